"""What a plan is made of: actions in Terraform's vocabulary; pure data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


SYMBOLS = {Op.CREATE: "+", Op.UPDATE: "~", Op.REPLACE: "-/+", Op.DELETE: "-"}


class Target(StrEnum):
    REPLICA = "replica"
    SERVICE = "service"  # in-place settings the gateway reads (routing, limits, labels)
    GATEWAY = "gateway"
    OBSERVABILITY = "observability"  # in-place: alerts, tracing and log settings
    COSTS = "costs"  # in-place: the prices the metrics endpoint's cost series use
    OBJECT = "object"  # a cluster object (``Deployment/chat``) a Kubernetes backend applies


@dataclass(frozen=True)
class Action:
    """One change. ``replica_id`` names the existing replica a replace or delete acts on."""

    op: Op
    target: Target
    service: str | None = None
    slot: int | None = None
    replica_id: str | None = None
    reasons: tuple[str, ...] = ()
    object: str | None = None
    """``KIND/NAME`` of a cluster object (target OBJECT)."""

    @property
    def address(self) -> str:
        if self.target is Target.OBJECT:
            return self.object or "?"
        if self.target is Target.GATEWAY:
            return "gateway"
        if self.target in (Target.OBSERVABILITY, Target.COSTS):
            return str(self.target)
        if self.target is Target.SERVICE:
            return f"service {self.service}"
        return f"{self.service}[{self.slot}]"

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["op"], body["target"] = str(self.op), str(self.target)
        body["reasons"] = list(self.reasons)
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Action:
        data = dict(body)
        data["op"], data["target"] = Op(data["op"]), Target(data["target"])
        data["reasons"] = tuple(data.get("reasons", ()))
        return cls(**data)


@dataclass(frozen=True)
class SeenRuntime:
    """What ran when a plan was made: a digest to compare, a summary to show."""

    digest: str
    summary: str


@dataclass(frozen=True)
class Plan:
    """Every change needed to make ``environment`` match the spec.

    ``serial`` is the state serial the plan was built from and ``seen`` what ran then
    (``plan.seen``): applying it after either moved on is refused (the plan may be
    wrong by then). ``seen`` is None only for plans built by hand, in tests.
    """

    environment: str
    serial: int
    spec_hash: str
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = field(default=())
    seen: SeenRuntime | None = None

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def count(self, op: Op) -> int:
        return sum(1 for action in self.actions if action.op is op)

    def summary(self) -> str:
        if not self.actions:
            return "No changes. The running fleet matches the spec."
        return (
            f"Plan: {self.count(Op.CREATE)} to create, {self.count(Op.UPDATE)} to update, "
            f"{self.count(Op.REPLACE)} to replace, {self.count(Op.DELETE)} to delete."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "serial": self.serial,
            "spec_hash": self.spec_hash,
            "actions": [a.to_json() for a in self.actions],
            "notes": list(self.notes),
            "seen": asdict(self.seen) if self.seen else None,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Plan:
        return cls(
            environment=body["environment"],
            serial=body["serial"],
            spec_hash=body["spec_hash"],
            actions=tuple(Action.from_json(a) for a in body["actions"]),
            notes=tuple(body.get("notes", ())),
            seen=SeenRuntime(**body["seen"]) if body.get("seen") else None,
        )
