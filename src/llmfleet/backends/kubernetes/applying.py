"""Carry out an ``ObjectPlan``: server-side apply in dependency order, then prune.

The plan's order is the render's (identities and config, then workloads, then
what selects them), so a pod never starts before its ServiceAccount or
ConfigMap. A replace deletes the object and applies it anew (the field that
changed cannot change in place). Deletes come last, so what replaces a pruned
object is there first. Conflicts stop the apply before anything changes,
unless ``force_conflicts`` takes the fields from their managers.
"""

from __future__ import annotations

from typing import Any

from llmfleet.backends.kubernetes.client import resource_type, to_resource, translated
from llmfleet.backends.kubernetes.planning import Action, ObjectChange, ObjectPlan
from llmfleet.errors import ApplyError, BackendError


def apply_objects(client: Any, plan: ObjectPlan, *, force_conflicts: bool = False) -> list[str]:
    """Apply ``plan``; returns what was done (``+ Deployment/chat``), in order.

    Raises ``BackendError`` for unforced conflicts (before any change) and
    ``ApplyError`` (with what was done) when the cluster refuses part-way."""
    if plan.conflicts and not force_conflicts:
        lines = "; ".join(f"{c.ref}: {', '.join(c.conflicts)}" for c in plan.conflicts)
        raise BackendError(
            f"fields llmfleet applies are owned by other field managers: {lines}",
            hint="leave those fields to their manager in fleet.yaml (e.g. an autoscaler owns "
            "replicas), or take them with --force-conflicts",
        )
    done: list[str] = []
    for change in plan.pending:
        try:
            _carry_out(client, change, namespace=plan.namespace, force=force_conflicts)
        except BackendError as exc:
            raise ApplyError(exc.message, done=done, hint=exc.hint) from exc
        done.append(f"{change.action} {change.ref}")
    return done


def _carry_out(client: Any, change: ObjectChange, *, namespace: str, force: bool) -> None:
    with translated(f"{change.action} {change.ref}"):
        if change.action in (Action.REPLACE, Action.DELETE):
            kind = resource_type(change.api_version, change.kind)
            client.delete(kind, change.name, namespace=namespace)
        if change.desired is not None and change.action != Action.DELETE:
            client.apply(to_resource(change.desired), force=force)
