"""What a plan does to the bill, in Infracost's manner; pure.

``+1 replica of chat: +$5,022/month (1 nvidia-h100, AWS p5.48xlarge on-demand at
$6.88/GPU-hour, as of 2026-11-09)``. Created replicas are priced with the spec's
resources, deleted ones with the resources they run with, a replaced one with
the difference. The monthly totals before and after compare what runs now with
what the spec asks for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from llmfleet.costs.money import money, price_phrase
from llmfleet.costs.prices import MissingPrice, PriceBook, ReplicaPrice, price_replica
from llmfleet.plan.model import Op, Plan, Target
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.spec.resources import Resources


@dataclass(frozen=True, slots=True)
class BillDelta:
    lines: tuple[str, ...]
    before: float
    after: float
    unpriced: tuple[str, ...]
    currency: str

    def summary(self) -> str:
        change = self.after - self.before
        text = (
            f"Monthly bill: {money(self.before, self.currency)} -> "
            f"{money(self.after, self.currency)} ({money(change, self.currency, sign=True)})"
        )
        if self.unpriced:
            text += f"; not priced: {', '.join(self.unpriced)}"
        return text


def bill_delta(
    plan: Plan,
    *,
    desired: ResolvedEnvironment,
    running: Mapping[str, tuple[str, Resources]],
    book: PriceBook,
) -> BillDelta:
    """The bill lines of ``plan``; ``running`` maps replica id -> (service, resources)."""
    hours = book.hours_per_month
    lines: list[str] = []
    unpriced: list[str] = []
    for service, ops in _replica_ops(plan).items():
        wanted = desired.services.get(service)
        if wanted is not None:
            lines += _created(service, ops.created, wanted.resources, book, hours, unpriced)
            lines += _replaced(service, ops.replaced, wanted.resources, running, book)
        lines += _deleted(service, ops.deleted, running, book, hours, unpriced)
    before = sum(_monthly(r, book) for _, r in running.values())
    after = sum(_monthly(s.resources, book) * s.replicas for s in desired.services.values())
    unpriced += [
        f"{name} ({found.what})"
        for name, s in desired.services.items()
        if isinstance(found := price_replica(s.resources, book), MissingPrice)
    ]
    return BillDelta(tuple(lines), before, after, tuple(dict.fromkeys(unpriced)), book.currency)


@dataclass
class _ServiceOps:
    created: int = 0
    replaced: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _replica_ops(plan: Plan) -> dict[str, _ServiceOps]:
    """Per service: how many replicas are created, and which are replaced or deleted."""
    ops: dict[str, _ServiceOps] = defaultdict(_ServiceOps)
    for action in plan.actions:
        if action.target is not Target.REPLICA or action.service is None:
            continue
        found = ops[action.service]
        if action.op is Op.CREATE:
            found.created += 1
        elif action.op is Op.REPLACE and action.replica_id is not None:
            found.replaced.append(action.replica_id)
        elif action.op is Op.DELETE and action.replica_id is not None:
            found.deleted.append(action.replica_id)
    return dict(ops)


def _monthly(resources: Resources, book: PriceBook) -> float:
    found = price_replica(resources, book)
    return found.per_hour * book.hours_per_month if isinstance(found, ReplicaPrice) else 0.0


def _plural(count: int) -> str:
    return f"{count} replica" + ("" if count == 1 else "s")


def _created(
    service: str,
    count: int,
    resources: Resources,
    book: PriceBook,
    hours: float,
    unpriced: list[str],
) -> list[str]:
    if not count:
        return []
    found = price_replica(resources, book)
    if isinstance(found, MissingPrice):
        unpriced.append(f"{service} ({found.what})")
        why = f"no price for {found.what}; {found.hint}"
        return [f"+{_plural(count)} of {service}: cost unknown ({why})"]
    amount = found.per_hour * hours * count
    return [
        f"+{_plural(count)} of {service}: {money(amount, book.currency, sign=True)}/month "
        f"({price_phrase(found, book.currency)})"
    ]


def _deleted(
    service: str,
    ids: list[str],
    running: Mapping[str, tuple[str, Resources]],
    book: PriceBook,
    hours: float,
    unpriced: list[str],
) -> list[str]:
    if not ids:
        return []
    prices = [price_replica(running[i][1] if i in running else Resources(), book) for i in ids]
    priced = [p for p in prices if isinstance(p, ReplicaPrice)]
    if len(priced) < len(prices):
        unpriced.append(service)
        return [f"-{_plural(len(ids))} of {service}: cost unknown (its hardware has no price)"]
    amount = -sum(p.per_hour for p in priced) * hours
    return [
        f"-{_plural(len(ids))} of {service}: {money(amount, book.currency)}/month "
        f"({price_phrase(priced[0], book.currency)})"
    ]


def _replaced(
    service: str,
    ids: list[str],
    resources: Resources,
    running: Mapping[str, tuple[str, Resources]],
    book: PriceBook,
) -> list[str]:
    """A replace changes the bill only when the replica's resources or their price do."""
    if not ids:
        return []
    new = price_replica(resources, book)
    olds = [price_replica(running[i][1] if i in running else resources, book) for i in ids]
    if isinstance(new, MissingPrice) or any(isinstance(o, MissingPrice) for o in olds):
        return [f"-/+{_plural(len(ids))} of {service}: cost change unknown (a price is missing)"]
    change = sum(new.per_hour - o.per_hour for o in olds if isinstance(o, ReplicaPrice))
    change *= book.hours_per_month
    if abs(change) < 0.005:
        return []
    first = olds[0]
    assert isinstance(first, ReplicaPrice)
    return [
        f"-/+{_plural(len(ids))} of {service}: {money(change, book.currency, sign=True)}/month "
        f"({first.units} -> {price_phrase(new, book.currency)})"
    ]
