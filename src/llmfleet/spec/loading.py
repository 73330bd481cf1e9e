"""Read ``fleet.yaml`` into a checked, fully resolved fleet; the only I/O of ``spec``.

``load_spec`` reads the file (the one side effect here), then everything is pure:
parse with locations, validate the top level, resolve templates and environments.
Every problem found on the way is collected and raised at once as one
``SpecError``, each problem placed at its line and column.

A spec larger than ``MAX_SPEC_BYTES`` is refused before it is parsed: PyYAML in
pure Python reads about a megabyte a second, and no fleet needs more.
Settings that are allowed but risky come back as ``warnings``, placed the same way.
A spec read from a file must also find the quality suites it names, relative to its
folder (a second, small read): ``check`` says so at the line, not ``validate`` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from llmfleet.errors import SpecError, SpecProblem
from llmfleet.spec.locations import Locations, place_findings
from llmfleet.spec.model import EXTENSION_PREFIX, FleetSpec, ResolvedFleet
from llmfleet.spec.origins import written_at
from llmfleet.spec.parsing import parse_document
from llmfleet.spec.problems import Finding, Key, respell_numbers, rewrite_errors
from llmfleet.spec.resolve import collect_resolution
from llmfleet.spec.risks import spec_warnings

MAX_SPEC_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedSpec:
    """A spec file as written (``spec``), resolved (``resolved``), and where each key is."""

    path: Path
    spec: FleetSpec
    resolved: ResolvedFleet
    locations: Locations
    warnings: tuple[SpecProblem, ...] = ()
    """Allowed, but worth a word from ``check`` and ``plan`` (``spec.risks``)."""


def load_spec(path: Path) -> LoadedSpec:
    """Read, check and resolve the spec at ``path``; raise ``SpecError`` with every problem."""
    filename = str(path)
    try:
        data = _read_bounded(path)
    except FileNotFoundError as exc:
        error = SpecError([SpecProblem(filename, None, None, "", "no such file")])
        error.hint = "run `llmfleet init` to write a commented example fleet.yaml"
        raise error from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = SpecProblem(filename, None, None, "", f"cannot read the file: {reason}")
        raise SpecError([problem]) from exc
    if data is None:
        raise _too_large(filename, size=path.stat().st_size)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([_undecodable(exc, data, filename)]) from exc
    return _load(text, path=path, filename=filename, base_dir=path.resolve().parent)


def load_spec_text(text: str, *, filename: str = "fleet.yaml") -> LoadedSpec:
    """Like ``load_spec`` for text already in memory; ``filename`` is used in messages."""
    size = len(text.encode())  # microseconds a megabyte, next to a second to parse it
    if size > MAX_SPEC_BYTES:
        raise _too_large(filename, size=size)
    return _load(text, path=Path(filename), filename=filename)


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, or None if it holds more than ``MAX_SPEC_BYTES`` (never read whole:
    a FIFO or a device may never end)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_SPEC_BYTES + 1)
    return data if len(data) <= MAX_SPEC_BYTES else None


def _too_large(filename: str, *, size: int) -> SpecError:
    """``size`` is 0 for what has no size of its own (a FIFO, a device)."""
    shown = f"{size / (1 << 20):.1f} MiB" if size > MAX_SPEC_BYTES else "more than 1 MiB"
    message = f"the file is {shown}; a spec may be at most {MAX_SPEC_BYTES >> 20} MiB"
    return SpecError([SpecProblem(filename, None, None, "", message)])


def _undecodable(exc: UnicodeDecodeError, data: bytes, filename: str) -> SpecProblem:
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    message = f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason})"
    return SpecProblem(filename, line, column, "", message)


def _load(text: str, *, path: Path, filename: str, base_dir: Path | None = None) -> LoadedSpec:
    document = parse_document(text, filename=filename)
    spec, findings = validate_top_level(document.data)
    findings = [*document.findings, *findings]
    resolved = None
    if spec is not None:
        gateways_sound = not any("gateway" in f.path for f in findings)
        resolution = collect_resolution(spec, check_ports=gateways_sound)
        findings += resolution.findings
        resolved = resolution.fleet
        if resolved is not None and base_dir is not None:
            findings += missing_suites(spec, resolved, base_dir=base_dir)
    if findings or spec is None or resolved is None:
        findings = respell_numbers(findings, document.written)
        raise SpecError(place_findings(findings, document.locations, filename=filename))
    warnings = place_findings(spec_warnings(spec, resolved), document.locations, filename=filename)
    return LoadedSpec(
        path=path,
        spec=spec,
        resolved=resolved,
        locations=document.locations,
        warnings=tuple(warnings),
    )


def missing_suites(spec: FleetSpec, resolved: ResolvedFleet, *, base_dir: Path) -> list[Finding]:
    """A finding for each quality suite a service names that is not a file under ``base_dir``,
    placed where the name is written (a template's once, however many use it)."""
    findings = []
    for env_name, env in sorted(resolved.environments.items()):
        for name, service in sorted(env.services.items()):
            suite = service.validation.quality if service.validation else None
            if suite is None:
                continue
            path = base_dir / suite
            if path.is_file():
                continue
            why = "is not a file" if path.exists() else "does not exist"
            at = (
                ("agents", name, "validation", "quality")
                if service.agent is not None
                else written_at(
                    spec, environment=env_name, service=name, field=("validation", "quality")
                )
            )
            findings.append(Finding(at, f"quality suite {suite} {why} ({path})"))
    return findings


def validate_top_level(data: dict[str, Any]) -> tuple[FleetSpec | None, list[Finding]]:
    """Validate ``data`` as a ``FleetSpec``; on errors, also salvage what is sound.

    The salvaged spec (every offending part removed) lets resolution go on and
    find the problems in the services too, so the user sees them all at once.
    Top-level keys starting with ``x-`` are ignored: a place for YAML anchors.
    """
    data = {key: value for key, value in data.items() if not key.startswith(EXTENSION_PREFIX)}
    try:
        return FleetSpec.model_validate(data), []
    except PydanticValidationError as exc:
        errors = rewrite_errors(exc, model=FleetSpec)
    findings = [Finding(loc, message) for loc, message in errors]
    salvaged = _without(data, [loc for loc, _ in errors])
    try:
        return FleetSpec.model_validate(salvaged), findings
    except PydanticValidationError:
        return None, findings


def _without(data: dict[str, Any], locs: list[tuple[Key, ...]]) -> dict[str, Any]:
    """A copy of ``data`` without the deepest existing part of each location."""
    copy: dict[str, Any] = {**data}
    for loc in locs:
        parent: Any = copy
        for key in loc[:-1]:
            child = parent.get(key) if isinstance(parent, dict) else None
            if not isinstance(child, dict):
                break
            parent[key] = child = {**child}  # copy on the way down, never mutate the input
            parent = child
        else:
            if isinstance(parent, dict):
                parent.pop(loc[-1], None)
            continue
        parent.pop(key, None)
    copy.setdefault("services", {})
    return copy
