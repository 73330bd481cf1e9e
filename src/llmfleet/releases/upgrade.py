"""Engine upgrades: find newer versions, and upgrade through the same gate.

``upgrade run`` makes the candidate in memory (the spec text with the new
``engine.version``), validates it against production, promotes it when it
passes, and only then writes the edited spec file, so the file stays the
source of truth and is untouched when the candidate fails. The edit is the
smallest textual one (the value on the line that holds the version), so
comments and layout survive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from llmfleet.engines.registry import get_adapter
from llmfleet.errors import EngineVersionError, ReleaseError
from llmfleet.releases.context import PRODUCTION, ReleaseContext
from llmfleet.releases.promotion import promote
from llmfleet.releases.validation import ValidationResult, run_validation
from llmfleet.spec.loading import LoadedSpec, load_spec_text
from llmfleet.spec.model import FleetSpec
from llmfleet.spec.problems import DocPath

Versions = Callable[[str], list[str]]


@dataclass(frozen=True)
class Available:
    service: str
    engine: str
    current: str
    newer: tuple[str, ...]


def version_key(version: str) -> Version:
    """A version's sort key; one that does not parse sorts first; pure."""
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


def newer_versions(current: str, released: Sequence[str]) -> tuple[str, ...]:
    """Released versions newer than ``current``, newest first; pure."""
    return tuple(
        sorted(
            (v for v in released if version_key(v) > version_key(current)),
            key=version_key,
            reverse=True,
        )
    )


def check_upgrades(ctx: ReleaseContext, versions: Versions | None = None) -> list[Available]:
    """Per production service, the newer releases of its engine (one index query per kind)."""
    lookup = versions or (lambda kind: get_adapter(kind).available_versions())
    cache: dict[str, list[str]] = {}
    found = []
    for name, service in sorted(ctx.loaded.resolved.environments[PRODUCTION].services.items()):
        kind = str(service.engine.kind)
        if kind not in cache:
            cache[kind] = lookup(kind)
        newer = newer_versions(service.engine.version, cache[kind])
        found.append(Available(name, kind, service.engine.version, newer))
    return found


def version_path(spec: FleetSpec, service: str) -> DocPath:
    """Where the production engine.version of ``service`` is written; pure.

    The last layer that sets it wins: the production override, the service, then
    its template chain (an inherited version is edited in the template).
    """
    env = spec.environments.get(PRODUCTION)
    if env is not None and "version" in env.services.get(service, {}).get("engine", {}):
        return ("environments", PRODUCTION, "services", service, "engine", "version")
    body = spec.services[service]
    if "version" in body.get("engine", {}):
        return ("services", service, "engine", "version")
    template = body.get("extends")
    while isinstance(template, str) and template in spec.templates:
        if "version" in spec.templates[template].get("engine", {}):
            return ("templates", template, "engine", "version")
        template = spec.templates[template].get("extends")
    raise ReleaseError(f"cannot find where the engine version of {service} is written")


_VALUE = re.compile(r"""version\s*:\s*("[^"\n]*"|'[^'\n]*'|[^\s,}#]+)""")


def edit_version(text: str, *, line: int, column: int, version: str) -> str:
    """``text`` with the version value whose key is at ``line``:``column`` replaced; pure."""
    lines = text.splitlines(keepends=True)
    current = lines[line - 1]
    match = _VALUE.match(current, column - 1)
    if match is None:
        raise ReleaseError(f"line {line} does not hold `version: VALUE` where expected")
    start, end = match.span(1)
    lines[line - 1] = current[:start] + f'"{version}"' + current[end:]
    return "".join(lines)


@dataclass(frozen=True)
class UpgradeResult:
    service: str
    old: str
    new: str
    validation: ValidationResult
    promoted: bool
    edited: str


@dataclass(frozen=True)
class Candidate:
    loaded: LoadedSpec
    original: str
    text: str
    where: str


def plan_upgrade(loaded: LoadedSpec, service: str, version: str) -> Candidate:
    """The candidate spec (in memory): the file's text with the version edited."""
    path = version_path(loaded.spec, service)
    dotted = ".".join(map(str, path))
    where = loaded.locations.get(path)
    if where is None:
        raise ReleaseError(f"no location recorded for {dotted}")
    original = loaded.path.read_text(encoding="utf-8")
    edited = edit_version(original, line=where.line, column=where.column, version=version)
    parsed = load_spec_text(edited, filename=str(loaded.path))
    candidate = LoadedSpec(loaded.path, parsed.spec, parsed.resolved, parsed.locations)
    got = candidate.resolved.environments[PRODUCTION].services[service].engine.version
    if got != version:
        raise ReleaseError(f"editing {dotted} did not change {service}'s production version")
    return Candidate(candidate, original, edited, f"{loaded.path}:{where.line} ({dotted})")


def run_upgrade(
    ctx: ReleaseContext, service: str, *, to: str | None = None, versions: Versions | None = None
) -> UpgradeResult | None:
    """Validate and promote ``service`` on a newer engine; None when it is up to date."""
    current = ctx.loaded.resolved.environments[PRODUCTION].services[service]
    released = (versions or (lambda k: get_adapter(k).available_versions()))(
        str(current.engine.kind)
    )
    if to is not None and to not in released:
        raise EngineVersionError(
            f"{current.engine.kind} version {to!r} does not exist",
            hint=f"released: {', '.join(released[:8])}",
        )
    target = to or next(iter(newer_versions(current.engine.version, released)), None)
    if target is None:
        return None
    candidate = plan_upgrade(ctx.loaded, service, target)
    cand_ctx = ctx.with_loaded(candidate.loaded)
    result = run_validation(cand_ctx, [service])
    if result.passed:
        promote(cand_ctx, [service], reason=f"upgrade {current.engine.version} -> {target}")
        write_spec(ctx, candidate)
    ctx.store.record_event(
        kind="upgrade",
        environment=PRODUCTION,
        serial=result.candidate_serial,
        user=ctx.user,
        payload={
            "service": service,
            "from": current.engine.version,
            "to": target,
            "promoted": result.passed,
            "outcome": result.outcome.value,
            "mode": "manual",
            "report": str(result.html_path),
            "edited": candidate.where if result.passed else None,
        },
    )
    return UpgradeResult(
        service, current.engine.version, target, result, result.passed, candidate.where
    )


def write_spec(ctx: ReleaseContext, candidate: Candidate) -> None:
    """Write the edited spec, unless someone changed the file during the validation."""
    now = ctx.loaded.path.read_text(encoding="utf-8")
    if now != candidate.original:
        raise ReleaseError(
            f"{ctx.loaded.path} changed during the upgrade; production runs the new version "
            f"but the file was not edited",
            hint=f"set the version at {candidate.where} by hand",
        )
    ctx.loaded.path.write_text(candidate.text, encoding="utf-8")
