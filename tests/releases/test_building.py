"""Builds run in a child process at the lowest priority and fail with their last lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.errors import EngineError
from llmfleet.releases.building import build_in_background


def test_a_build_runs_at_nice_19_and_a_failed_one_says_why(tmp_path: Path) -> None:
    lines = build_in_background("sim", "1.2.0", cache_dir=tmp_path)
    assert "building sim 1.2.0 at nice 19" in lines
    assert any(line.startswith("installed sim 1.2.0") for line in lines)
    with pytest.raises(EngineError, match=r"exited with 1: .*sim engine version '9\.9\.9'"):
        build_in_background("sim", "9.9.9", cache_dir=tmp_path)
