"""The specs and environments the Kubernetes tests render: every example the project
ships and a GPU fleet on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmfleet.backends.kubernetes.context import OPTIONAL_APIS, RenderContext
from llmfleet.backends.kubernetes.render import render_environment
from llmfleet.spec.loading import load_spec

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
SPECS = {
    "quickstart": ROOT / "examples" / "quickstart.yaml",
    "init": ROOT / "src" / "llmfleet" / "examples" / "fleet.yaml",
    "gpu": HERE / "specs" / "gpu.yaml",
}
CASES = [
    (spec, env)
    for spec in SPECS
    for env in ("production", "staging")
    if (spec, env) != ("gpu", "staging")
]
CASE_IDS = [f"{spec}-{env}" for spec, env in CASES]


def context(spec: str, env: str, *, apis: frozenset[str] = OPTIONAL_APIS) -> RenderContext:
    resolved = load_spec(SPECS[spec]).resolved
    return RenderContext(fleet=resolved.name, environment=resolved.environment(env), apis=apis)


def render(spec: str, env: str, *, apis: frozenset[str] = OPTIONAL_APIS) -> list[dict[str, Any]]:
    return render_environment(context(spec, env, apis=apis))
