"""Proving that an installed ``llama-server`` answers on this machine.

A CPU's flags can promise more than it runs: an Intel Xeon under a Firecracker-style
VM lists ``amx_tile amx_int8 amx_bf16`` and its XCR0 has the tile bits, yet
``tilezero`` traps, and a llama-server built for that CPU dies of SIGILL in ggml's
AMX kernels during its warm-up decode. ``--version`` runs fine there, so an install
is only done when the server has loaded a small real model and answered a
one-token completion.

``prove_server`` starts the executable with each ``Setting`` in turn, while it dies
of SIGILL, and returns the first that answers. The install records that setting and
every replica of the version runs with it; the install that no setting rescues is
rebuilt for a portable instruction set (``portable_cmake_args``), and one that still
cannot answer is never installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfleet.engines.environment import engine_environment

if TYPE_CHECKING:
    import httpx

PROOF_TIMEOUT_S = 120.0
"""Load and answer: SmolLM2-135M loads in about half a second here; a slow disk or a
busy machine gets room."""
_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class Setting:
    """One way to run the same binary: extra environment and why it may help."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    why: str = ""


AS_BUILT = Setting("as built")
NO_REPACK = Setting(
    "no repack",
    {"LLAMA_ARG_REPACK": "false"},
    "keeps the weights out of the CPU-specific repacked buffers (ggml's AMX path), "
    "which some virtual machines advertise but do not run",
)
SETTINGS = (AS_BUILT, NO_REPACK)


@dataclass(frozen=True, slots=True)
class Trial:
    """How one start of the server went."""

    setting: str
    answered: bool
    exit_code: int | None = None
    detail: str = ""
    log_tail: tuple[str, ...] = ()

    @property
    def died_of_sigill(self) -> bool:
        return self.exit_code in (-signal.SIGILL, 128 + signal.SIGILL)

    def to_json(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "answered": self.answered,
            "exit_code": self.exit_code,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Proof:
    """The settings tried in order; ``setting`` is the one that answered, if any."""

    trials: tuple[Trial, ...]
    setting: Setting | None

    @property
    def last(self) -> Trial:
        return self.trials[-1]


def prove_server(
    executable: Path,
    *,
    model: Path,
    settings: tuple[Setting, ...] = SETTINGS,
    timeout_s: float = PROOF_TIMEOUT_S,
) -> Proof:
    """Try ``settings`` in order until one answers; stop early on a failure that is not
    SIGILL (another setting would not help)."""
    trials: list[Trial] = []
    for setting in settings:
        trial = try_setting(executable, model=model, setting=setting, timeout_s=timeout_s)
        trials.append(trial)
        if trial.answered:
            return Proof(tuple(trials), setting)
        if not trial.died_of_sigill:
            break
    return Proof(tuple(trials), None)


def try_setting(executable: Path, *, model: Path, setting: Setting, timeout_s: float) -> Trial:
    """Start the server with ``setting``, ask for one token, stop it; never leaves it running."""
    port = _free_port()
    argv = [
        str(executable),
        *("--model", str(model), "--host", "127.0.0.1", "--port", str(port)),
        *("--ctx-size", "256", "--parallel", "1", "--threads", "1"),
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=engine_environment(setting.env),
            start_new_session=True,
        )
        try:
            answered, detail = _ask_one_token(proc, port=port, timeout_s=timeout_s)
        finally:
            _stop(proc)
        code = None if answered else proc.returncode
        return Trial(setting.name, answered, code, detail, _tail(log))


def _ask_one_token(
    proc: subprocess.Popen[bytes], *, port: int, timeout_s: float
) -> tuple[bool, str]:
    # httpx is imported only to prove an install: `check` asks the installer whether a
    # version is installed and must not pay for an HTTP client (tests/cli/test_fast_start.py).
    import httpx

    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    deadline = started + timeout_s
    with httpx.Client(timeout=min(timeout_s, 60.0)) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False, f"exited with {proc.returncode} before it answered"
            if _healthy(client, base):
                return _complete(client, base, proc, started)
            time.sleep(_POLL_S)
    return False, f"no answer within {timeout_s:.0f} s"


def _healthy(client: httpx.Client, base: str) -> bool:
    import httpx

    try:
        return client.get(f"{base}/health").status_code == 200
    except httpx.HTTPError:
        return False


def _complete(
    client: httpx.Client, base: str, proc: subprocess.Popen[bytes], started: float
) -> tuple[bool, str]:
    import httpx

    body = {"prompt": "Hello", "max_tokens": 1, "temperature": 0}
    try:
        answer = client.post(f"{base}/v1/completions", json=body)
        choices = answer.json().get("choices") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        choices = None
    if choices:
        return True, f"answered one token {time.monotonic() - started:.1f} s after start"
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)  # a fault in the first decode: let the exit status arrive
    if proc.returncode is not None:
        return False, f"exited with {proc.returncode} while answering"
    return False, "was healthy but did not answer a one-token completion"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(log: Any, lines: int = 15) -> tuple[str, ...]:
    log.seek(0)
    text = log.read()[-16_384:].decode(errors="replace")
    return tuple(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo``; pure."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


_PORTABLE = (
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("bmi2", "GGML_BMI2"),
)
_NEVER = (
    "GGML_AVX512",
    "GGML_AVX512_VBMI",
    "GGML_AVX512_VNNI",
    "GGML_AVX512_BF16",
    "GGML_AMX_TILE",
    "GGML_AMX_INT8",
    "GGML_AMX_BF16",
)


def portable_cmake_args(flags: frozenset[str]) -> str:
    """CMake options for a build that uses only long-established instruction sets the
    CPU lists (AVX2 and its companions), never AVX-512 or AMX, whose state a
    hypervisor must enable and may not; pure."""
    on = [f"-D{option}={'ON' if flag in flags else 'OFF'}" for flag, option in _PORTABLE]
    off = [f"-D{option}=OFF" for option in _NEVER]
    return " ".join(["-DGGML_NATIVE=OFF", *on, *off])


def read_cpu_flags() -> frozenset[str]:
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()
