"""What changes between a live object and the one server-side apply would make; pure.

Both sides come from the API server (the live object from a GET or LIST, the
desired one from a dry-run apply), so both carry the server's defaults and
only real changes differ. What is never a change: ``status``, the server's
bookkeeping in ``metadata`` (``managedFields``, versions, uid, timestamps) and
annotations controllers write (a Deployment's revision number).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

NOISE_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
)
NOISE_ANNOTATIONS = (
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
)


def strip_noise(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` without status and the server's bookkeeping (a copy)."""
    body = copy.deepcopy(manifest)
    body.pop("status", None)
    meta = body.get("metadata") or {}
    for key in NOISE_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in NOISE_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        meta.pop("annotations", None)
    return body


def changed_fields(live: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """The paths where the two differ, as a person reads them:
    ``spec.template.spec.containers[engine].image``; sorted."""
    before = dict(_leaves(strip_noise(live)))
    after = dict(_leaves(strip_noise(desired)))
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves by path; a list of named maps (containers, volumes, ports) is walked by
    name, any other list is one value."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, f"{path}.{key}" if path else str(key))
    elif _named_list(value):
        for item in value:
            yield from _leaves(item, f"{path}[{item['name']}]")
    else:
        yield path, value


def _named_list(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    names = [item.get("name") if isinstance(item, dict) else None for item in value]
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
