"""Where a resolved service's field was written, to place a problem found after resolving; pure.

A service's value comes from the last layer that sets it (``spec.resolve``): the
environment's override of the service, the environment's defaults, the service,
then its templates from the nearest up. A problem with the value (an engine version
that was never released, a suite file that is missing) belongs on that line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmfleet.spec.model import FleetSpec
from llmfleet.spec.problems import DocPath


def written_at(spec: FleetSpec, *, environment: str, service: str, field: DocPath) -> DocPath:
    """The document path of ``field`` (e.g. ``("engine", "version")``) where the layer that
    gave ``service`` its value in ``environment`` sets it; the service itself if none does."""
    for at, body in _layers(spec, environment=environment, service=service):
        if _holds(body, field):
            return (*at, *field)
    return ("services", service)


def _layers(spec: FleetSpec, *, environment: str, service: str) -> list[tuple[DocPath, Any]]:
    """The layers of ``service`` in ``environment``, the one that wins first."""
    layers: list[tuple[DocPath, Any]] = []
    env = spec.environments.get(environment)
    if env is not None:
        at: DocPath = ("environments", environment)
        layers.append(((*at, "services", service), env.services.get(service)))
        layers.append(((*at, "defaults"), env.defaults))
    body = spec.services.get(service)
    layers.append((("services", service), body))
    seen: set[str] = set()
    parent = body.get("extends") if isinstance(body, Mapping) else None
    while isinstance(parent, str) and parent in spec.templates and parent not in seen:
        seen.add(parent)
        template = spec.templates[parent]
        layers.append((("templates", parent), template))
        parent = template.get("extends") if isinstance(template, Mapping) else None
    return layers


def _holds(body: Any, field: DocPath) -> bool:
    for key in field:
        if not isinstance(body, Mapping) or body.get(key) is None:
            return False
        body = body[key]
    return True
