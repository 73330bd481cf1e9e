"""The pure parts of what a client may take: read deadlines on exact fake time, the
verdict a request's head earns, and the body budget."""

from __future__ import annotations

import pytest

from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.intake import (
    BodyBudget,
    KeyState,
    Limits,
    ReadClock,
    ServiceLimits,
    check_head,
)
from llmfleet.gateway.keys import KeyInfo
from tests.gateway.conftest import service

LIMITS = Limits(header_timeout_s=10, body_idle_s=5, body_timeout_s=60)


def test_the_head_has_its_timeout_from_its_first_byte_however_it_trickles() -> None:
    """Bytes of the head are no progress: it is late 10 s after its first byte."""
    clock = ReadClock(LIMITS, started_at=100.0)
    for now in (101.0, 105.0, 109.0):
        clock.saw(now, head_done=False)
    assert clock.due() == 110.0
    assert clock.late(109.9) is None
    assert "headers did not arrive within 10 s" in (clock.late(110.0) or "")


def test_a_body_must_keep_coming_and_end_in_time() -> None:
    """The body is late after 5 s without bytes, or 60 s after the head, whichever
    comes first."""
    clock = ReadClock(LIMITS, started_at=0.0)
    clock.saw(1.0, head_done=True)
    assert clock.due() == 6.0
    assert "no progress for 5 s" in (clock.late(6.0) or "")
    for now in range(2, 61, 4):
        clock.saw(float(now), head_done=True)
    assert clock.due() == 61.0
    assert "not complete within 60 s" in (clock.late(61.0) or "")


SERVICES = ServiceLimits.of(
    {
        "open": service(admission={"max_body_bytes": 1000}),
        "small": service(auth={"required": True}, admission={"max_body_bytes": 2000}),
        "big": service(auth={"required": True}, admission={"max_body_bytes": 9000}),
    }
)
KEYED_ONLY = ServiceLimits.of({"big": service(auth={"required": True})})
SMALL_KEY = KeyInfo(id="1", name="s", services=frozenset({"small"}))


@pytest.mark.parametrize(
    ("limits", "key", "length", "expected"),
    [
        (SERVICES, KeyState.MISSING, 500, 1000),
        (SERVICES, KeyState.MISSING, 1500, 413),
        (SERVICES, KeyState.INVALID, 1500, 413),
        (SERVICES, KeyState.UNVERIFIED, 5000, 9000),
        (SERVICES, SMALL_KEY, 1500, 2000),
        (SERVICES, SMALL_KEY, 5000, 413),
        (SERVICES, KeyInfo(id="2", name="all"), None, 9000),
        (KEYED_ONLY, KeyState.MISSING, 10, 401),
        (KEYED_ONLY, KeyState.INVALID, 10, 401),
        (KEYED_ONLY, SMALL_KEY, 10, 403),
    ],
)
def test_a_head_earns_the_largest_body_of_the_services_its_caller_may_use(
    limits: ServiceLimits, key: KeyInfo | KeyState, length: int | None, expected: int
) -> None:
    """A limit, or the error the headers already earn (413 over every reachable
    limit; 401/403 when no service is reachable at all)."""
    verdict = check_head(limits, length=length, key=key)
    assert (verdict.status if isinstance(verdict, ApiError) else verdict) == expected


def test_the_body_budget_lets_one_large_body_in_alone() -> None:
    """Takes fit in the limit; one body over it goes only when nothing is held."""
    budget = BodyBudget(100)
    assert budget.take(60) and not budget.take(50) and budget.take(40)
    budget.give(100)
    assert budget.take(500) and not budget.take(1)
    budget.give(500)
    assert budget.used == 0
