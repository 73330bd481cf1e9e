"""The upgrade scheduler's decisions with an injected clock: windows, targets, steps; pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from llmfleet.releases.scheduling import (
    Step,
    StepKind,
    UpgradeRecord,
    decide_step,
    next_opening,
    pick_target,
    window_open,
)
from llmfleet.spec.upgrades import Follow, UpgradePolicy, Window

BERLIN = ZoneInfo("Europe/Berlin")
SATURDAY_NIGHT = Window(days=("sat",), start="02:00", end="05:00", time_zone="Europe/Berlin")


def berlin(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (berlin(5, 2, 0), True),  # 2026-12-05 is a Saturday
        (berlin(5, 4, 59), True),
        (berlin(5, 5, 0), False),
        (berlin(5, 1, 59), False),
        (berlin(4, 3, 0), False),  # Friday
        (berlin(5, 1, 30).astimezone(UTC) + timedelta(hours=1), True),  # 02:30 Berlin in UTC
    ],
)
def test_window_is_open_on_its_day_and_hours_in_its_own_zone(
    moment: datetime, is_open: bool
) -> None:
    assert window_open(SATURDAY_NIGHT, moment) is is_open


def test_a_window_that_crosses_midnight_belongs_to_the_day_it_opens() -> None:
    late = Window(days=("fri",), start="22:00", end="02:00", time_zone="Europe/Berlin")
    assert window_open(late, berlin(4, 23))
    assert window_open(late, berlin(5, 1, 59))  # Saturday morning, Friday's window
    assert not window_open(late, berlin(5, 23))  # Saturday night: no window


def test_next_opening_is_the_next_start_and_keeps_local_time_across_dst() -> None:
    assert next_opening(SATURDAY_NIGHT, berlin(4, 12)) == berlin(5, 2).astimezone(UTC)
    assert next_opening(SATURDAY_NIGHT, berlin(5, 3)) == berlin(5, 3).astimezone(UTC)
    assert next_opening(SATURDAY_NIGHT, berlin(5, 6)) == berlin(12, 2).astimezone(UTC)
    # 2027-03-28 02:00 does not exist in Berlin (clocks jump to 03:00): still inside 02-05
    spring = next_opening(SATURDAY_NIGHT, datetime(2027, 3, 21, 12, tzinfo=BERLIN))
    assert spring.astimezone(BERLIN).date().isoformat() == "2027-03-27"
    assert spring.astimezone(BERLIN).hour == 2


def test_target_is_the_newest_followed_release_and_a_failure_blocks_older_ones() -> None:
    every = UpgradePolicy()
    record = UpgradeRecord(released=("11440.0.0", "11434.0.0", "11401.0.0"))
    assert pick_target(every, record, current="11401.0.0") == "11440.0.0"
    only_1143x = UpgradePolicy(match=r"1143\d\..*")
    assert pick_target(only_1143x, record, current="11401.0.0") == "11434.0.0"
    failed = UpgradeRecord(released=record.released, failed={"11440.0.0": "slower"})
    assert pick_target(every, failed, current="11401.0.0") is None
    newer = UpgradeRecord(released=("11450.0.0", *record.released), failed=failed.failed)
    assert pick_target(every, newer, current="11401.0.0") == "11450.0.0"


NOW = berlin(4, 12)  # Friday noon: the Saturday window is closed


def _decide(record: UpgradeRecord, *, now: datetime = NOW, built: bool = False,
            locked: bool = False, policy: UpgradePolicy | None = None) -> Step:  # fmt: skip
    return decide_step(
        policy or UpgradePolicy(window=SATURDAY_NIGHT),
        record,
        current="1.0.0",
        now=now,
        installed=lambda version: built,
        apply_locked=locked,
    )


def test_steps_follow_check_build_wait_for_the_window_validate() -> None:
    fresh = UpgradeRecord(last_check=NOW, released=("1.2.0", "1.0.0"))
    assert _decide(UpgradeRecord()).kind is StepKind.CHECK
    build = _decide(fresh)
    assert (build.kind, build.version) == (StepKind.BUILD, "1.2.0")
    wait = _decide(fresh, built=True)
    assert wait.kind is StepKind.WAIT
    assert wait.until == berlin(5, 2).astimezone(UTC)
    looked = UpgradeRecord(last_check=berlin(5, 2), released=fresh.released)
    inside = _decide(looked, built=True, now=berlin(5, 2, 30))
    assert inside.kind is StepKind.VALIDATE
    stale = _decide(fresh, now=NOW + timedelta(hours=6))
    assert stale.kind is StepKind.CHECK


def test_an_apply_holding_the_lock_defers_every_step() -> None:
    assert _decide(UpgradeRecord(), locked=True).kind is StepKind.DEFER


def test_failed_and_proposed_candidates_are_not_tried_again() -> None:
    failed = UpgradeRecord(last_check=NOW, released=("1.2.0",), failed={"1.2.0": "ttft 3x"})
    idle = _decide(failed, built=True)
    assert idle.kind is StepKind.IDLE and "ttft 3x" in idle.reason
    proposed = UpgradeRecord(last_check=NOW, released=("1.2.0",), proposed={"1.2.0": "x.md"})
    assert _decide(proposed).kind is StepKind.IDLE


def test_weekly_waits_a_week_after_the_last_upgrade() -> None:
    weekly = UpgradePolicy(follow=Follow.WEEKLY)
    record = UpgradeRecord(
        last_check=NOW, released=("1.2.0",), last_upgrade=NOW - timedelta(days=2)
    )
    wait = _decide(record, built=True, policy=weekly)
    assert wait.kind is StepKind.WAIT
    assert wait.until == NOW + timedelta(days=5)
    week = NOW + timedelta(days=5, minutes=1)
    looked = UpgradeRecord(last_check=week, released=("1.2.0",), last_upgrade=record.last_upgrade)
    assert _decide(looked, built=True, policy=weekly, now=week).kind is StepKind.VALIDATE
