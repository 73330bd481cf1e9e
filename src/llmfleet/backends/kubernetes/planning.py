"""Plan an environment's objects against a cluster: what server-side apply would change.

For each rendered object, a server-side apply dry run (``fieldManager=llmfleet``,
``dryRun=All``) says what the object would become, and the live object what it
is: their difference (``diffing``) is the plan's ``~`` fields. A field another
manager owns (an autoscaler owning ``spec.replicas``) is a conflict, reported and
never taken without ``force_conflicts``. A field that cannot change (a Deployment's
selector) makes the object a replace ``-/+``. Objects labelled as this fleet's
environment that are no longer rendered are deleted ``-`` (prune, as kubectl's
ApplySets do). Reads only: nothing in the cluster changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from llmfleet.backends.kubernetes.client import (
    Manifest,
    causes_of,
    resource_type,
    status_of,
    to_manifest,
    to_resource,
    translated,
)
from llmfleet.backends.kubernetes.diffing import changed_fields
from llmfleet.backends.kubernetes.labels import ENVIRONMENT, FLEET, MANAGED_BY, Owner

PRUNABLE = (
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)
"""Kinds llmfleet renders whose API every cluster serves: listed to find strays.
(Optional APIs are listed only when something of theirs is rendered.)"""


class Action(StrEnum):
    CREATE = "+"
    UPDATE = "~"
    REPLACE = "-/+"
    DELETE = "-"
    NOOP = ""


@dataclass(frozen=True)
class ObjectChange:
    """One object's change; ``desired`` is the manifest to apply (None for a delete)."""

    action: Action
    api_version: str
    kind: str
    name: str
    fields: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    """'.spec.replicas owned by "hpa-controller"': fields another manager holds."""
    desired: Manifest | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ObjectPlan:
    namespace: str
    changes: tuple[ObjectChange, ...] = field(default_factory=tuple)

    @property
    def pending(self) -> list[ObjectChange]:
        return [c for c in self.changes if c.action != Action.NOOP]

    @property
    def conflicts(self) -> list[ObjectChange]:
        return [c for c in self.changes if c.conflicts]


def prune_selector(owner: Owner) -> dict[str, str]:
    """The labels every object of this fleet's environment carries, and nothing else's."""
    return {FLEET: owner.fleet, ENVIRONMENT: owner.environment, MANAGED_BY: "llmfleet"}


def plan_objects(
    client: Any,
    objects: Sequence[Manifest],
    *,
    owner: Owner,
    namespace: str,
    force_conflicts: bool = False,
) -> ObjectPlan:
    """The plan that takes the cluster to ``objects`` (in their order), then the prunes."""
    live = _live_objects(client, objects, owner=owner, namespace=namespace)
    changes = [
        _plan_one(client, manifest, live.get(_ref(manifest)), force_conflicts=force_conflicts)
        for manifest in objects
    ]
    rendered = {_ref(m) for m in objects}
    strays = [body for ref, body in live.items() if ref not in rendered and _ours(body, owner)]
    changes += [
        ObjectChange(Action.DELETE, body["apiVersion"], body["kind"], body["metadata"]["name"])
        for body in reversed(strays)
    ]
    return ObjectPlan(namespace=namespace, changes=tuple(changes))


def _ref(manifest: Manifest) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


def _ours(body: Manifest, owner: Owner) -> bool:
    labels = body.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in prune_selector(owner).items())


def _live_objects(
    client: Any, objects: Sequence[Manifest], *, owner: Owner, namespace: str
) -> dict[tuple[str, str], Manifest]:
    """This environment's objects in the cluster (one LIST per kind, by label), and any
    rendered object of the same name that lacks the labels (a GET each)."""
    kinds = list(PRUNABLE) + sorted({(m["apiVersion"], m["kind"]) for m in objects} - set(PRUNABLE))
    live: dict[tuple[str, str], Manifest] = {}
    selector = prune_selector(owner)
    for api_version, kind in kinds:
        with translated(f"listing the {kind}s of namespace {namespace}"):
            found = client.list(
                resource_type(api_version, kind), namespace=namespace, labels=selector
            )
            for item in found:
                body = to_manifest(item, api_version=api_version, kind=kind)
                live[_ref(body)] = body
    for manifest in objects:
        if _ref(manifest) not in live and (named := _get(client, manifest, namespace)) is not None:
            live[_ref(manifest)] = named
    return live


def _get(client: Any, manifest: Manifest, namespace: str) -> Manifest | None:
    from lightkube import ApiError

    api_version, kind = manifest["apiVersion"], manifest["kind"]
    name = manifest["metadata"]["name"]
    with translated(f"reading {kind}/{name}"):
        try:
            found = client.get(resource_type(api_version, kind), name, namespace=namespace)
        except ApiError as exc:
            if status_of(exc) == 404:
                return None
            raise
    return to_manifest(found, api_version=api_version, kind=kind)


def _plan_one(
    client: Any, manifest: Manifest, live: Manifest | None, *, force_conflicts: bool
) -> ObjectChange:
    from lightkube import ApiError

    api_version, kind, name = manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]
    conflicts: tuple[str, ...] = ()
    with translated(f"planning {kind}/{name}"):
        try:
            dry = _dry_apply(client, manifest, force=force_conflicts)
        except ApiError as exc:
            code = status_of(exc)
            if code == 422 and live is not None:  # an immutable field: only a new object
                fields = tuple(c["field"] for c in causes_of(exc)) or ("(immutable)",)
                return ObjectChange(
                    Action.REPLACE, api_version, kind, name, fields, desired=manifest
                )
            if code != 409:
                raise
            conflicts = tuple(
                f"{c['field']} owned by {_manager(c['message'])}" for c in causes_of(exc)
            )
            dry = _dry_apply(client, manifest, force=True)  # what it would be, forced
    if live is None:
        return ObjectChange(Action.CREATE, api_version, kind, name, desired=manifest)
    fields = tuple(changed_fields(live, dry))
    action = Action.UPDATE if fields or conflicts else Action.NOOP
    return ObjectChange(action, api_version, kind, name, fields, conflicts, desired=manifest)


def _dry_apply(client: Any, manifest: Manifest, *, force: bool) -> Manifest:
    result = client.apply(to_resource(manifest), force=force, dry_run=True)
    return to_manifest(result, api_version=manifest["apiVersion"], kind=manifest["kind"])


def _manager(message: str) -> str:
    """'conflict with "hpa-controller" using apps/v1' -> 'hpa-controller'."""
    parts = message.split('"')
    return parts[1] if len(parts) >= 3 else message
