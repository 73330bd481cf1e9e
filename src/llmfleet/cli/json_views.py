"""The ``--json`` documents of ``check``, ``status``, ``plan`` and ``history``; pure.

Scripts and CI read these, so their field names are a contract: every document
carries ``format_version`` (1 today; a field is only ever added within a version,
never renamed or removed), times are UTC ISO 8601 strings ending in ``Z``, and
absent values are ``null`` rather than missing keys. Fields are listed one by one
here, never dumped from internal objects, so a change inside llmfleet cannot
change the output by accident (and nothing private, such as a replica's
environment, leaks into it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmfleet.backends.exits import describe_exit
from llmfleet.spec.placement import BackendKind

if TYPE_CHECKING:
    from llmfleet.backends.base import ReplicaStatus
    from llmfleet.backends.local.failed import FailedReplica
    from llmfleet.errors import SpecProblem
    from llmfleet.plan.model import Plan
    from llmfleet.spec.model import ResolvedEnvironment, ResolvedFleet
    from llmfleet.state.records import Event, Revision

FORMAT_VERSION = 1
Document = dict[str, Any]


def dumps(document: Document) -> str:
    """The text printed for a document: indented, keys in the order written here."""
    return json.dumps({"format_version": FORMAT_VERSION, **document}, indent=2) + "\n"


def utc(moment: datetime | float | None) -> str | None:
    """A datetime (naive ones are UTC, as the state store keeps them) or epoch seconds."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def problem_document(problem: SpecProblem) -> Document:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": problem.message,
    }


def check_document(
    resolved: ResolvedFleet | None,
    *,
    problems: Sequence[SpecProblem] = (),
    warnings: Sequence[SpecProblem] = (),
    notes: Sequence[SpecProblem] = (),
) -> Document:
    environments = [] if resolved is None else sorted(resolved.environments.items())
    fleet = "" if resolved is None else resolved.name
    return {
        "ok": not problems,
        "environments": [
            {
                "name": name,
                "services": len(env.services),
                "replicas": sum(s.replicas for s in env.services.values()),
                "gateway": gateway_place(fleet, env)[1],
            }
            for name, env in environments
        ],
        "problems": [problem_document(p) for p in problems],
        "warnings": [problem_document(w) for w in warnings],
        "notes": [problem_document(n) for n in notes],
    }


def gateway_place(fleet: str, env: ResolvedEnvironment) -> tuple[str, str]:
    """Where an environment's gateway is, in words and as data: HOST:PORT on this
    machine; on a cluster its context and namespace (it takes no port here) and the
    address clients use, when the spec gives one."""
    if env.backend.kind is not BackendKind.KUBERNETES:
        address = f"{env.gateway.host}:{env.gateway.port}"
        return f"gateway {address}", address
    from llmfleet.backends.kubernetes.names import namespace_of

    where = f"namespace {namespace_of(fleet, env.name, env.backend)}"
    if env.backend.context:
        where = f"context {env.backend.context}, {where}"
    words = f"gateway on kubernetes ({where})"
    if env.backend.gateway_url:
        return f"{words} at {env.backend.gateway_url}", env.backend.gateway_url
    return words, f"kubernetes: {where}"


def replica_document(replica: ReplicaStatus) -> Document:
    exit_meaning = None if replica.last_exit is None else describe_exit(replica.last_exit)
    return {
        "environment": replica.environment,
        "service": replica.service,
        "slot": replica.slot,
        "replica_id": replica.replica_id,
        "engine": replica.engine,
        "engine_version": replica.engine_version,
        "state": str(replica.state),
        "pid": replica.pid,
        "port": replica.port,
        "started_at": utc(replica.started_at),
        "ready_at": utc(replica.ready_at),
        "restarts": replica.restarts,
        "last_exit": replica.last_exit,
        "last_exit_meaning": None if exit_meaning is None else exit_meaning.summary,
        "labels": dict(replica.labels),
    }


def gateway_document(gateway: ReplicaStatus) -> Document:
    host = gateway.config.get("host", "127.0.0.1")
    return {
        "environment": gateway.environment,
        "replica_id": gateway.replica_id,
        "url": f"http://{host}:{gateway.port}",
        "state": str(gateway.state),
        "pid": gateway.pid,
        "restarts": gateway.restarts,
    }


def failed_document(failed: FailedReplica) -> Document:
    """A replica that failed and was stopped: its last status, ``reason`` and when."""
    return {
        **replica_document(failed.status),
        "state": "failed",
        "reason": failed.reason,
        "stopped_at": utc(failed.stopped_at),
    }


def status_document(
    *,
    running: bool,
    replicas: Sequence[ReplicaStatus],
    gateways: Sequence[ReplicaStatus],
    failed: Sequence[FailedReplica] = (),
    warnings: Sequence[str] = (),
) -> Document:
    """``warnings``: what the agent says is wrong with itself (its table cannot be
    saved), as the text status prints them."""
    ordered = sorted(replicas, key=lambda r: (r.environment, r.service, r.slot))
    return {
        "running": running,
        "replicas": [replica_document(r) for r in ordered],
        "gateways": [gateway_document(g) for g in gateways],
        "failed": [failed_document(f) for f in failed],
        "warnings": list(warnings),
    }


def plan_document(plan: Plan) -> Document:
    return {
        "environment": plan.environment,
        "serial": plan.serial,
        "spec_hash": plan.spec_hash,
        "has_changes": plan.has_changes,
        "summary": plan.summary(),
        "actions": [
            {
                "op": str(a.op),
                "target": str(a.target),
                "address": a.address,
                "service": a.service,
                "slot": a.slot,
                "replica_id": a.replica_id,
                "reasons": list(a.reasons),
            }
            for a in plan.actions
        ],
        "notes": list(plan.notes),
    }


def history_document(revisions: Sequence[Revision], events: Sequence[Event]) -> Document:
    return {
        "revisions": [
            {
                "serial": r.serial,
                "environment": r.environment,
                "kind": str(r.kind),
                "outcome": str(r.outcome),
                "created_at": utc(r.created_at),
                "user": r.user,
                "message": r.message,
                "error": r.error,
                "changes": len(r.plan.get("actions", [])) if isinstance(r.plan, dict) else 0,
                "parent_serial": r.parent_serial,
            }
            for r in revisions
        ],
        "events": [
            {
                "id": e.id,
                "kind": e.kind,
                "environment": e.environment,
                "serial": e.serial,
                "created_at": utc(e.created_at),
                "user": e.user,
                "payload": e.payload,
            }
            for e in events
        ],
    }
