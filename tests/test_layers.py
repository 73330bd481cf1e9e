"""The layering of STYLE.md, enforced: lower layers never import higher ones, and
siblings that need not know each other don't (the gateway never imports plan)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llmfleet"

FORBIDDEN = {
    "spec": {
        "state",
        "plan",
        "apply",
        "backends",
        "engines",
        "models",
        "gateway",
        "observe",
        "validate",
        "releases",
        "cli",
    },
    "state": {
        "plan",
        "apply",
        "backends",
        "engines",
        "models",
        "gateway",
        "observe",
        "validate",
        "releases",
        "cli",
    },
    "plan": {
        "state",
        "apply",
        "engines",
        "models",
        "gateway",
        "observe",
        "validate",
        "releases",
        "cli",
    },
    "engines": {"state", "plan", "apply", "gateway", "observe", "validate", "releases", "cli"},
    "models": {
        "state",
        "plan",
        "apply",
        "backends",
        "gateway",
        "observe",
        "validate",
        "releases",
        "cli",
    },
    "gateway": {"plan", "apply", "validate", "releases", "cli", "rag"},
    "apply": {"gateway", "validate", "releases", "cli"},
    "observe": {"plan", "apply", "validate", "releases", "cli"},
    "validate": {"apply", "releases", "cli"},
    "releases": {"cli"},
    "rag": {
        "state",
        "plan",
        "apply",
        "backends",
        "engines",
        "models",
        "gateway",
        "validate",
        "releases",
        "cli",
    },
    # the shipped example agent reaches the fleet over HTTP, as any agent must
    "examples": {
        "state",
        "plan",
        "apply",
        "backends",
        "engines",
        "models",
        "gateway",
        "observe",
        "validate",
        "releases",
        "cli",
        "costs",
    },
    "costs": {
        "apply",
        "backends",
        "engines",
        "models",
        "gateway",
        "observe",
        "validate",
        "releases",
        "cli",
    },
}


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "llmfleet" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(imported_layers(path) & FORBIDDEN[layer])
        for path in (SRC / layer).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


CONCRETE_BACKENDS = ("llmfleet.backends.local", "llmfleet.backends.kubernetes")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("layer", ["apply", "releases", "plan", "gateway"])
def test_layer_talks_to_the_backend_protocol_never_a_concrete_backend(layer: str) -> None:
    """apply, releases, plan and the gateway go through ``backends.base.Backend``;
    which backend runs an environment is chosen in ``backends.choice``."""
    offenders = {
        str(path.relative_to(SRC)): sorted(
            m for m in imported_modules(path) if m.startswith(CONCRETE_BACKENDS)
        )
        for path in (SRC / layer).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
