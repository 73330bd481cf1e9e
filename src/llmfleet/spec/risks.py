"""What a spec may say but should not say silently: warnings for ``check`` and ``plan``; pure.

``spec_warnings`` is the one place they come from; each is a ``Finding``, placed
in the file like a problem, and shown in yellow without changing any exit code:

- ``engine.env`` that changes which code an engine runs (``LD_PRELOAD``, ``PATH``,
  ``PYTHONPATH``, ...), wherever it is written: a service, a template, an
  environment's defaults or overrides;
- a gateway that other machines reach, serving services without API keys,
  because the spec says ``allow_unauthenticated: true`` (``spec.exposure``);
- an agent's ``egress:`` in an environment whose backend cannot enforce it (only a
  cluster's NetworkPolicy does).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from llmfleet.spec.exposure import open_gateways
from llmfleet.spec.model import FleetSpec, ResolvedFleet
from llmfleet.spec.placement import BackendKind
from llmfleet.spec.problems import DocPath, Finding

_LINKER = "the dynamic linker reads {name}: it can load other code into the engine"
_PYTHON = "Python reads {name} at start: it can run other code in the engine"
_INTERPRETER = "an interpreter reads {name} at start: it can run other code in the engine"
_RISKY_PREFIXES = {"LD_": _LINKER, "DYLD_": _LINKER}
_RISKY_NAMES = {
    "PATH": "{name} decides which programs the engine runs",
    "PYTHONPATH": _PYTHON,
    "PYTHONSTARTUP": _PYTHON,
    "PYTHONHOME": _PYTHON,
    "PYTHONUSERBASE": _PYTHON,
    "PYTHONINSPECT": _PYTHON,
    "BASH_ENV": "a shell the engine starts runs the file {name} names",
    "ENV": "a shell the engine starts runs the file {name} names",
    "PERL5LIB": _INTERPRETER,
    "PERL5OPT": _INTERPRETER,
    "RUBYOPT": _INTERPRETER,
    "NODE_OPTIONS": _INTERPRETER,
    "GCONV_PATH": "the C library loads code from where {name} points",
}


def spec_warnings(spec: FleetSpec, resolved: ResolvedFleet) -> list[Finding]:
    """Every warning for a spec that resolved without problems."""
    warnings = [
        Finding((*at, name), f"{reason}; set it only if you mean to")
        for at, env in _engine_envs(spec)
        for name in env
        if (reason := risky_variable(name)) is not None
    ]
    exposures = open_gateways(
        spec,
        gateways={name: env.gateway for name, env in resolved.environments.items()},
        services={name: env.services for name, env in resolved.environments.items()},
    )
    warnings += [Finding(e.path, e.warning()) for e in exposures if e.allowed]
    warnings += _unenforced_egress(spec, resolved)
    return warnings


def _unenforced_egress(spec: FleetSpec, resolved: ResolvedFleet) -> list[Finding]:
    """An agent's ``egress:`` where its environment's backend cannot enforce it."""
    local = sorted(
        name for name, env in resolved.environments.items()
        if env.backend.kind is not BackendKind.KUBERNETES
    )  # fmt: skip
    if not local:
        return []
    return [
        Finding(
            ("agents", name, "egress"),
            f"not enforced on the local backend (environments {', '.join(local)}): there "
            "the agent reaches any address; only a kubernetes environment applies it",
        )
        for name, agent in spec.agents.items()
        if agent.egress is not None
    ]


def risky_variable(name: str) -> str | None:
    """Why setting ``name`` for an engine changes which code it runs, or None."""
    template = _RISKY_NAMES.get(name) or next(
        (why for prefix, why in _RISKY_PREFIXES.items() if name.startswith(prefix)), None
    )
    return template.format(name=name) if template else None


def _engine_envs(spec: FleetSpec) -> Iterator[tuple[DocPath, Mapping[str, Any]]]:
    """Each ``engine.env`` as written (partial services are plain mappings), with its path."""
    partials: list[tuple[DocPath, Any]] = [
        *((("templates", name), body) for name, body in spec.templates.items()),
        *((("services", name), body) for name, body in spec.services.items()),
    ]
    for env_name, environment in spec.environments.items():
        at: DocPath = ("environments", env_name)
        partials.append(((*at, "defaults"), environment.defaults))
        partials += [((*at, "services", name), body) for name, body in environment.services.items()]
    for at, body in partials:
        engine = body.get("engine") if isinstance(body, Mapping) else None
        variables = engine.get("env") if isinstance(engine, Mapping) else None
        if isinstance(variables, Mapping):
            yield (*at, "engine", "env"), variables
