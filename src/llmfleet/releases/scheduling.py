"""What the upgrade scheduler does next for one service; pure.

``decide_step`` reads a service's ``UpgradePolicy``, what the state says about
its upgrades (``UpgradeRecord``, built from events by ``releases.upgrade_log``)
and the time it is given, and names one step: look for releases, build a
candidate, validate it (then promote or propose), or wait and say until when.
Nothing here reads a clock or the state: ``releases.autoupgrade`` does, and
carries the step out.

Order of the checks, and why:
1. an apply holds the state lock -> defer (a validation would wait on it, and
   an upgrade must never interleave with a person's change);
2. the last look is older than ``check_every_s`` -> check;
3. the newest release the policy follows, newer than what runs, not failed
   before (a failed candidate is retried only once a newer one appears);
   ``weekly`` waits a week after the last upgrade;
4. not installed -> build (any time, at low priority);
5. the window is closed -> wait for it (validation loads production, and the
   promotion follows right after it, so both happen inside the window);
6. validate, then promote (or propose).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from llmfleet.releases.upgrade import newer_versions
from llmfleet.spec.upgrades import DAYS, Follow, PromoteMode, UpgradePolicy, Window

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class UpgradeRecord:
    """What the state says about one service's upgrades (all times UTC)."""

    last_check: datetime | None = None
    released: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    """version -> why it failed (its build or its validation)"""
    proposed: Mapping[str, str] = field(default_factory=dict)
    """version -> the proposal's report, for ``promote: propose``"""
    last_upgrade: datetime | None = None


class StepKind(StrEnum):
    DEFER = "defer"
    CHECK = "check"
    BUILD = "build"
    VALIDATE = "validate"
    WAIT = "wait"
    IDLE = "idle"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    reason: str
    version: str | None = None
    until: datetime | None = None


def decide_step(
    policy: UpgradePolicy,
    record: UpgradeRecord,
    *,
    current: str,
    now: datetime,
    installed: Callable[[str], bool],
    apply_locked: bool,
) -> Step:
    """The next step for one service; see the module doc for the order."""
    if apply_locked:
        return Step(StepKind.DEFER, "an apply holds the state lock; deferred to the next tick")
    due = check_due(policy, record, now)
    if due <= now:
        return Step(StepKind.CHECK, "time to look for new releases")
    target = pick_target(policy, record, current=current)
    if target is None:
        return Step(StepKind.IDLE, idle_reason(policy, record, current), until=due)
    if target in record.proposed:
        return Step(
            StepKind.IDLE, f"{target} passed and awaits review: {record.proposed[target]}",
            until=due,
        )  # fmt: skip
    if policy.follow is Follow.WEEKLY and record.last_upgrade is not None:
        allowed = record.last_upgrade + WEEK
        if now < allowed:
            return Step(StepKind.WAIT, "at most one upgrade a week", target, allowed)
    if not installed(target):
        return Step(StepKind.BUILD, f"{target} is not installed", target)
    if policy.window is not None and not window_open(policy.window, now):
        opens = next_opening(policy.window, now)
        return Step(StepKind.WAIT, f"{target} is built; the window is closed", target, opens)
    what = "promote" if policy.promote is PromoteMode.AUTO else "propose"
    return Step(StepKind.VALIDATE, f"validate {target}, then {what} it", target)


def idle_reason(policy: UpgradePolicy, record: UpgradeRecord, current: str) -> str:
    followed = [v for v in newer_versions(current, record.released) if policy.follows(v)]
    if followed and followed[0] in record.failed:
        return f"{followed[0]} failed ({record.failed[followed[0]]}); waiting for a newer release"
    return f"up to date on {current}"


def check_due(policy: UpgradePolicy, record: UpgradeRecord, now: datetime) -> datetime:
    """When releases are next looked up (``now`` or earlier: at once); pure."""
    if record.last_check is None:
        return now
    return record.last_check + timedelta(seconds=policy.check_every_s)


def pick_target(policy: UpgradePolicy, record: UpgradeRecord, *, current: str) -> str | None:
    """The newest release the policy follows, newer than ``current``, not failed; pure.

    A failed version is skipped, and so is every version older than it: the
    scheduler moves forward only, so a failure is retried only when a newer
    release appears (and then the newer one is tried)."""
    for version in newer_versions(current, record.released):
        if not policy.follows(version):
            continue
        if version in record.failed:
            return None
        return version
    return None


def window_open(window: Window, now: datetime) -> bool:
    """Whether ``now`` (aware) is inside ``window``; pure."""
    return any(start <= now < end for start, end in _openings(window, now, days=(-1, 0)))


def next_opening(window: Window, now: datetime) -> datetime:
    """When ``window`` next opens after ``now`` (``now`` itself when open), in UTC; pure."""
    if window_open(window, now):
        return now.astimezone(UTC)
    starts = [start for start, _ in _openings(window, now, days=range(9)) if start > now]
    return min(starts).astimezone(UTC)


def _openings(
    window: Window, now: datetime, *, days: range | tuple[int, ...]
) -> list[tuple[datetime, datetime]]:
    """The window's (start, end) on the days around ``now``, in its own zone. Wall
    times are combined with the zone, so a window stays at 02:00 local across DST."""
    zone = window.zone
    today = now.astimezone(zone).date()
    found = []
    for offset in days:
        day: date = today + timedelta(days=offset)
        if DAYS[day.weekday()] not in window.days:
            continue
        start = datetime.combine(day, window.opens, tzinfo=zone)
        end_day = day if window.closes > window.opens else day + timedelta(days=1)
        found.append((start, datetime.combine(end_day, window.closes, tzinfo=zone)))
    return found
