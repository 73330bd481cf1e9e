"""``check`` reads the quality suites the spec names, as ``validate`` will read them: a
malformed suite is reported now, at its own file:line:col, not minutes into a validation.
(A suite that is missing is a spec problem, found when the spec is read.)"""

from __future__ import annotations

from pathlib import Path

from llmfleet.cli.workspace import Workspace
from llmfleet.errors import ValidationError


def check_suites(ws: Workspace) -> None:
    """``ValidationError`` listing every problem of every suite the spec names."""
    from llmfleet.validate.suites import AGENT_CHECKS_HINT, agent_checks_of_model, load_suite

    names: set[str] = set()
    paths: dict[Path, set[str]] = {}  # suite -> the models (not agents) it judges
    for env in ws.loaded.resolved.environments.values():
        for name, service in env.services.items():
            names.add(name)
            if service.validation is not None and service.validation.quality is not None:
                models = paths.setdefault(ws.spec_dir / service.validation.quality, set())
                if service.agent is None:
                    models.add(name)
    problems = []
    hint = "validate reads these suites as they are"
    for path, models in sorted(paths.items()):
        try:
            suite = load_suite(path, services=names)
        except ValidationError as exc:
            problems.append(exc.message)
            continue
        for model in sorted(models):
            problem = agent_checks_of_model(model, suite)
            if problem is not None:
                problems.append(f"{path}: {problem}")
                hint = AGENT_CHECKS_HINT
    if problems:
        raise ValidationError("\n".join(problems), hint=hint)
