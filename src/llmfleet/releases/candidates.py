"""Which services a release is about, and how a candidate is named; pure.

A candidate is identified by the hash of its production service spec, the
thing promote would apply: validating it and then editing the spec makes a
different hash, so promote can tell a validated candidate from a changed one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from llmfleet.apply.executor import redact
from llmfleet.errors import ReleaseError
from llmfleet.spec.model import ResolvedEnvironment, ServiceSpec


def candidate_hash(service: ServiceSpec) -> str:
    body = json.dumps(service.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def pick_services(environment: ResolvedEnvironment, names: Iterable[str]) -> list[str]:
    """``names`` checked against the environment; every service when none are named."""
    chosen = list(names) or sorted(environment.services)
    unknown = [name for name in chosen if name not in environment.services]
    if unknown:
        raise ReleaseError(
            f"no service {', '.join(repr(n) for n in unknown)} in {environment.name}",
            hint=f"services: {', '.join(sorted(environment.services))}",
        )
    return chosen


def only_services(environment: ResolvedEnvironment, names: Iterable[str]) -> ResolvedEnvironment:
    """``environment`` with just the named services (staging runs only the candidates)."""
    wanted = set(names)
    kept = {n: s for n, s in environment.services.items() if n in wanted}
    return environment.model_copy(update={"services": kept})


def changed_services(
    desired: ResolvedEnvironment, recorded: Mapping[str, Any] | None
) -> dict[str, str]:
    """Services whose desired spec differs from the recorded one: name -> candidate hash."""
    running = (recorded or {}).get("services", {})
    changed = {}
    for name, service in sorted(desired.services.items()):
        if running.get(name) != redact(service.model_dump(mode="json")):
            changed[name] = candidate_hash(service)
    return changed


def merged_environment(
    desired: ResolvedEnvironment, recorded: Mapping[str, Any] | None, names: Iterable[str]
) -> ResolvedEnvironment:
    """What runs now with only ``names`` taken from ``desired`` (a partial promote)."""
    if recorded is None:
        return only_services(desired, names)
    base = ResolvedEnvironment.model_validate(restore_secrets(recorded, desired))
    services = dict(base.services)
    services.update({n: desired.services[n] for n in names})
    return desired.model_copy(update={"services": services})


MASK = "***"


def restore_secrets(recorded: Mapping[str, Any], current: ResolvedEnvironment) -> dict[str, Any]:
    """The recorded spec with each masked value (``***``) taken from the current spec.

    Revisions never store secrets; a value that the current spec no longer has
    cannot be restored, and that is refused with the path to set.
    """
    restored: dict[str, Any] = _unmask(dict(recorded), current.model_dump(mode="json"), path=())
    return restored


def _unmask(recorded: Any, current: Any, *, path: tuple[str, ...]) -> Any:
    if isinstance(recorded, dict):
        here = current if isinstance(current, dict) else {}
        return {k: _unmask(v, here.get(k), path=(*path, k)) for k, v in recorded.items()}
    if recorded == MASK:
        if not isinstance(current, str) or current == MASK:
            raise ReleaseError(
                f"the revision's {'.'.join(path)} was recorded masked and the spec has no value",
                hint="set it in the spec (it is a secret, so it is never recorded) and retry",
            )
        return current
    return recorded
