"""The CLI starts fast because each command imports only what it uses.

There is no warm server to hand commands to: ``llmfleet check`` must stay well under
a second on a small machine by not importing the database, HTTP, numeric or tracing
libraries it never calls. Asserted on what the real entry point imports (``python -X
importtime -m llmfleet``), not on a timing, so a busy test machine cannot flake it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port=18080)
HEAVY = (
    "sqlalchemy",
    "httpx",
    "numpy",
    "opentelemetry",
    "huggingface_hub",
    "jsonschema",
    "aiohttp",
    "prometheus_client",
)
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)


def imported_by(command: str, project: Path) -> set[str]:
    """Top-level packages the real entry point imports to run ``command``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llmfleet", command, "-f", "fleet.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {name.partition(".")[0] for name in IMPORT_LINE.findall(result.stderr)}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "fleet.yaml").write_text(SPEC)
    return tmp_path


@pytest.mark.parametrize("command", ["check", "status"])
def test_check_and_status_without_an_agent_import_no_heavy_library(
    command: str, project: Path
) -> None:
    """``check`` reads only the spec; ``status`` with no agent running only looks for
    its socket: neither loads the state database, an HTTP client or numpy."""
    modules = imported_by(command, project)
    assert "llmfleet" in modules and "pydantic" in modules  # the parse above is real
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_plan_loads_the_state_database_but_nothing_it_does_not_call(project: Path) -> None:
    """``plan`` reads the state (SQLAlchemy) but, with no agent running, needs no HTTP
    client, and never the validation or tracing libraries."""
    modules = imported_by("plan", project)
    assert "sqlalchemy" in modules
    assert modules.isdisjoint(set(HEAVY) - {"sqlalchemy"}), sorted(modules & set(HEAVY))
