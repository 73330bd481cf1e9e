"""A quality suite the spec names must exist: found by ``check`` at the line that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.errors import SpecError
from llmfleet.spec.loading import load_spec, load_spec_text
from tests.fixtures.fleet import Fleet

SPEC = """
templates:
  checked:
    validation:
      quality: suites/shared.yaml
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    validation:
      quality: suites/chat.yaml
  echo:
    extends: checked
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
environments:
  production: {gateway: {port: 18080}}
"""
SUITE = "cases:\n  - name: hi\n    prompt: hi\n    checks: [{contains: hi}]\n"


def test_missing_suites_are_placed_where_they_are_named(tmp_path: Path) -> None:
    """Each at its own line, the one named in a template at the template."""
    (tmp_path / "fleet.yaml").write_text(SPEC)
    with pytest.raises(SpecError) as raised:
        load_spec(tmp_path / "fleet.yaml")
    shown = [p.render() for p in raised.value.problems]
    name = str(tmp_path / "fleet.yaml")
    assert shown == [
        f"{name}:5:7: templates.checked.validation.quality: quality suite "
        f"suites/shared.yaml does not exist ({tmp_path / 'suites/shared.yaml'})",
        f"{name}:11:7: services.chat.validation.quality: quality suite "
        f"suites/chat.yaml does not exist ({tmp_path / 'suites/chat.yaml'})",
    ]


def test_suites_that_exist_pass_and_text_specs_are_not_checked(tmp_path: Path) -> None:
    """A spec held in memory (a recorded revision) has no folder to look in."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "chat.yaml").write_text(SUITE)
    (tmp_path / "suites" / "shared.yaml").mkdir()  # a folder is no suite
    (tmp_path / "fleet.yaml").write_text(SPEC)
    with pytest.raises(SpecError, match=r"suites/shared\.yaml is not a file"):
        load_spec(tmp_path / "fleet.yaml")
    (tmp_path / "suites" / "shared.yaml").rmdir()
    (tmp_path / "suites" / "shared.yaml").write_text(SUITE)
    assert load_spec(tmp_path / "fleet.yaml").resolved.environments
    assert load_spec_text(SPEC.replace("suites/", "nowhere/")).resolved.environments


def test_check_reports_a_missing_suite_without_a_traceback(fleet: Fleet) -> None:
    fleet.write(SPEC.replace("  echo:\n    extends: checked\n", "  echo:\n"))
    result = fleet.run("check", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert "fleet.yaml:11:7: services.chat.validation.quality: quality suite " in said
    assert "Traceback" not in result.stderr


def test_check_reads_the_suites_as_validate_will(fleet: Fleet) -> None:
    """A suite that is there but malformed is reported at its own file:line:col."""
    (fleet.root / "suites").mkdir()
    (fleet.root / "suites" / "chat.yaml").write_text(SUITE.replace("contains", "containz"))
    fleet.write(SPEC.replace("  echo:\n    extends: checked\n", "  echo:\n"))
    result = fleet.run("check", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert f"{fleet.root / 'suites' / 'chat.yaml'}:4:15: cases.0.checks.0" in said, said
    assert "Traceback" not in result.stderr


def test_check_refuses_agent_checks_in_a_models_suite(fleet: Fleet) -> None:
    """retrieved: and called: judge what an agent reports; a model's suite with them
    could never pass, so check says so now, as validate would before staging."""
    (fleet.root / "suites").mkdir()
    agentish = SUITE.replace("{contains: hi}", "{retrieved: docs/a.md}")
    (fleet.root / "suites" / "chat.yaml").write_text(agentish)
    fleet.write(SPEC.replace("  echo:\n    extends: checked\n", "  echo:\n"))
    result = fleet.run("check", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert "the suite of service 'chat' checks what an agent reports (hi: retrieved)" in said
    assert "Traceback" not in result.stderr
