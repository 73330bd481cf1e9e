"""Which measured throughput prices a service, and how a measurement is written; pure.

A service is priced per million tokens only with a throughput measured on what
it runs: the latest measurement of its environment's current revision, or else
the latest of the same runtime (model, engine, slots, context, resources: the
``runtime_hash``) under another revision, such as the candidate a validation
measured before it was promoted. Within it, the load level whose concurrency is
the service's (slots x replicas), or the nearest one measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmfleet.state.records import Measurement


@dataclass(frozen=True, slots=True)
class Pick:
    """The measurement that prices a service, and why it was chosen."""

    measurement: Measurement
    exact_revision: bool
    """False: the same runtime measured under another revision"""

    def to_json(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "id": m.id,
            "date": m.created_at.isoformat(timespec="seconds"),
            "source": m.source,
            "environment": m.environment,
            "serial": m.serial,
            "exact_revision": self.exact_revision,
            "level": m.level,
            "concurrency": m.concurrency,
            "replicas": m.replicas,
            "duration_s": m.duration_s,
            "requests": m.requests,
            "errors": m.errors,
            "output_tokens_per_s": m.output_tokens_per_s,
            "input_tokens_per_s": m.input_tokens_per_s,
        }


def pick_measurement(
    measurements: Iterable[Measurement],
    *,
    environment: str,
    serial: int | None,
    runtime_hash: str,
    concurrency: int,
) -> Pick | None:
    """The measurement that prices a service (see the module doc), or None; pure.

    ``measurements`` may hold any services and environments; only this service's
    closed-loop levels with some output count.
    """
    usable = [m for m in measurements if m.concurrency is not None and m.output_tokens_per_s > 0]
    exact = [m for m in usable if m.environment == environment and m.serial == serial]
    if serial is not None and exact:
        return Pick(_nearest(_latest_run(exact), concurrency), exact_revision=True)
    same = [m for m in usable if m.runtime_hash == runtime_hash]
    if same:
        return Pick(_nearest(_latest_run(same), concurrency), exact_revision=False)
    return None


def _latest_run(candidates: Sequence[Measurement]) -> list[Measurement]:
    """The levels of the newest run: rows recorded together share their timestamp."""
    newest = max(candidates, key=lambda m: (m.created_at, m.id))
    return [
        m
        for m in candidates
        if m.created_at == newest.created_at
        and (m.environment, m.serial, m.runtime_hash)
        == (newest.environment, newest.serial, newest.runtime_hash)
    ]


def _nearest(levels: Sequence[Measurement], concurrency: int) -> Measurement:
    """The level nearest ``concurrency``; on a tie the higher one (more like a busy service)."""
    return min(
        levels, key=lambda m: (abs((m.concurrency or 0) - concurrency), -(m.concurrency or 0))
    )


class Summary(Protocol):
    """What a load level's summary gives a measurement (``validate.stats.LoadSummary``)."""

    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def output_tokens_per_s(self) -> float: ...
    @property
    def input_tokens_per_s(self) -> float: ...


def measurement_rows(
    levels: Mapping[str, Summary],
    *,
    environment: str,
    service: str,
    serial: int | None,
    runtime_hash: str,
    replicas: int,
    source: str,
    scale: float = 1.0,
) -> list[dict[str, Any]]:
    """One row per load level of a speed run, ready for ``StateStore.record_measurements``.

    ``scale`` is the factor the load was multiplied by (a validation gives production
    its replicas' share), so a row says the concurrency that really ran.
    """
    return [
        {
            "environment": environment,
            "service": service,
            "serial": serial,
            "runtime_hash": runtime_hash,
            "replicas": replicas,
            "source": source,
            "level": label,
            "concurrency": _concurrency(label, scale),
            "duration_s": summary.duration_s,
            "requests": summary.requests,
            "errors": summary.errors,
            "input_tokens_per_s": summary.input_tokens_per_s,
            "output_tokens_per_s": summary.output_tokens_per_s,
        }
        for label, summary in levels.items()
    ]


def _concurrency(label: str, scale: float) -> int | None:
    """``c4`` -> 4 (times ``scale``, as the runner rounds it); a rate level has none."""
    if not label.startswith("c") or not label[1:].isdigit():
        return None
    return max(1, round(int(label[1:]) * scale))
