"""``check`` reads the quality suites the spec names, as ``validate`` will read them: a
malformed suite is reported now, at its own file:line:col, not minutes into a validation.
(A suite that is missing is a spec problem, found when the spec is read.)"""

from __future__ import annotations

from pathlib import Path

from llmfleet.cli.workspace import Workspace
from llmfleet.errors import ValidationError


def check_suites(ws: Workspace) -> None:
    """``ValidationError`` listing every problem of every suite the spec names."""
    from llmfleet.validate.suites import load_suite

    names: set[str] = set()
    paths: set[Path] = set()
    for env in ws.loaded.resolved.environments.values():
        for name, service in env.services.items():
            names.add(name)
            if service.validation is not None and service.validation.quality is not None:
                paths.add(ws.spec_dir / service.validation.quality)
    problems = []
    for path in sorted(paths):
        try:
            load_suite(path, services=names)
        except ValidationError as exc:
            problems.append(exc.message)
    if problems:
        raise ValidationError("\n".join(problems), hint="validate reads these suites as they are")
