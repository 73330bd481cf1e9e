"""Start a sim engine as a real process: for tests, benchmarks and simulations.

The package ships its own fake engine (httpx ships ``MockTransport`` the same
way); this is the one place that knows how to launch it on a free port and
wait for its "listening" line.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from llmfleet.engines.sim.adapter import API_KEY_ENV
from llmfleet.errors import EngineError


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class SimProcess:
    """A running ``python -m llmfleet.engines.sim``; stop it when done."""

    popen: subprocess.Popen[str]
    port: int
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait(self, timeout_s: float) -> int:
        """The exit code once the process ends (raises ``TimeoutExpired`` if it does not)."""
        return self.popen.wait(timeout=timeout_s)

    def stderr(self) -> str:
        """What the process wrote to stderr; only once it has exited."""
        return self.popen.stderr.read() if self.popen.stderr else ""

    def stop(self, timeout_s: float = 5.0) -> int:
        """Terminate (then kill) the process; returns its exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        code = self.popen.wait()
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream:
                stream.close()
        return code


def start_sim(
    args: Sequence[str] = (),
    *,
    port: int | None = None,
    timeout_s: float = 15.0,
    api_key: str | None = None,
) -> SimProcess:
    """Launch a sim on 127.0.0.1 and return once it listens; with ``api_key`` it wants
    that key as a local replica does (given in its environment).

    Raises ``EngineError`` with the process's stderr if it exits or stays
    silent for ``timeout_s``.
    """
    port = port or free_port()
    argv = [sys.executable, "-m", "llmfleet.engines.sim", "--port", str(port), *args]
    env = dict(os.environ)
    if api_key is not None:
        env[API_KEY_ENV] = api_key
    popen = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    process = SimProcess(popen=popen, port=port)
    if not _await_listening(popen, timeout_s):
        code = process.stop()
        raise EngineError(f"the sim engine did not start (exit {code}): {process.stderr().strip()}")
    return process


def _await_listening(popen: subprocess.Popen[str], timeout_s: float) -> bool:
    """Read stdout until the 'listening' line, the process's end, or the deadline."""
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(popen.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            line = popen.stdout.readline()
            if not line:
                return False
            if "sim engine listening on" in line:
                return True
    return False
