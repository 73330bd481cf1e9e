"""A process's log file is capped: rotated by size, a bounded number of files kept.

The gateway writes its request log (one line per request) and its own log records
to its stderr, which the local agent points at ``.llmfleet/logs/gateways/ID.log``;
112 MB after 212k requests was the way a busy gateway filled a disk. Past
``LLMFLEET_LOG_MAX_BYTES`` the file is renamed ``ID.log.1`` (older ones shift up,
the oldest beyond ``LLMFLEET_LOG_FILES`` is dropped) and a fresh one is opened in
its place, on the same file descriptors; lines are never split between files.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmfleet.observe.logs import JsonLinesBuffer
from llmfleet.observe.rotation import LogLimits, LogRotator, cap_appended_file

LIMIT = 4096
FILES = 3


def log_files(path: Path) -> list[Path]:
    """The live file and its rotated ones, newest first."""
    return sorted(path.parent.glob(path.name + "*"), key=lambda p: (len(p.name), p.name))


def read_lines(files: list[Path]) -> list[str]:
    """Every line of ``files``, oldest file first; each must end with a newline."""
    lines: list[str] = []
    for file in reversed(files):
        text = file.read_text()
        assert text.endswith("\n"), f"{file.name} ends in the middle of a line"
        lines.extend(text.splitlines())
    return lines


def assert_capped(path: Path, *, limit: int = LIMIT, files: int = FILES) -> list[str]:
    found = log_files(path)
    assert [p.name for p in found] == [path.name] + [f"{path.name}.{i}" for i in range(1, files)]
    for file in found:
        assert file.stat().st_size <= limit, (file.name, file.stat().st_size)
    return read_lines(found)


def test_request_lines_rotate_and_stay_within_the_cap(tmp_path: Path) -> None:
    """5,000 request lines through a 4 KiB x 3 cap: three files, none over 4 KiB, every
    line whole JSON, the newest lines kept in order."""
    path = tmp_path / "gw.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with open(fd, "w", closefd=False) as stream:
            rotator = LogRotator(path, (fd,), LogLimits(max_bytes=LIMIT, files=FILES))
            lines = JsonLinesBuffer(
                stream, service_name="gw", logger="requests", max_lines=64, rotator=rotator
            )
            for n in range(5000):
                lines.write("chat /v1/chat/completions 200", {"n": n})
            lines.flush()
    finally:
        os.close(fd)
    numbers = [json.loads(line)["n"] for line in assert_capped(path)]
    assert numbers == list(range(numbers[0], 5000))
    assert len(numbers) > 10


def test_a_line_longer_than_the_cap_is_written_whole(tmp_path: Path) -> None:
    """A single line over the cap (a logged prompt) gets a file of its own, whole."""
    path = tmp_path / "gw.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with open(fd, "w", closefd=False) as stream:
            rotator = LogRotator(path, (fd,), LogLimits(max_bytes=LIMIT, files=FILES))
            lines = JsonLinesBuffer(stream, service_name="gw", logger="r", rotator=rotator)
            lines.write("small", {"n": 0})
            lines.write("big", {"n": 1, "prompt": "x" * (2 * LIMIT)})
            lines.write("small", {"n": 2})
            lines.flush()
    finally:
        os.close(fd)
    found = log_files(path)
    assert [json.loads(line)["n"] for line in read_lines(found)] == [0, 1, 2]
    assert sum(f.stat().st_size > LIMIT for f in found) == 1


def test_limits_come_from_the_environment() -> None:
    """Defaults of 50 MiB x 5; ``LLMFLEET_LOG_MAX_BYTES=0`` turns the cap off; nonsense
    is refused with the variable's name."""
    assert LogLimits.from_env({}) == LogLimits(max_bytes=50 * 1024 * 1024, files=5)
    assert LogLimits.from_env({"LLMFLEET_LOG_MAX_BYTES": "1000", "LLMFLEET_LOG_FILES": "2"}) == (
        LogLimits(max_bytes=1000, files=2)
    )
    assert LogLimits.from_env({"LLMFLEET_LOG_MAX_BYTES": "0"}) is None
    with pytest.raises(ValueError, match="LLMFLEET_LOG_FILES"):
        LogLimits.from_env({"LLMFLEET_LOG_FILES": "0"})
    with pytest.raises(ValueError, match="LLMFLEET_LOG_MAX_BYTES"):
        LogLimits.from_env({"LLMFLEET_LOG_MAX_BYTES": "lots"})


CHILD = """
import logging, os, sys, time
from types import SimpleNamespace
from llmfleet.observe.logs import configure_logging
from llmfleet.observe.requests import RequestObserver

configure_logging(service_name="llmfleet-gateway")
print("llmfleet gateway listening", flush=True)
observer = RequestObserver.from_env(os.environ, environment="test", clock=time.monotonic)
call = SimpleNamespace(service="chat", path="/v1/chat/completions", body={}, started_at=0.0,
                       attempts=[], replica="chat-0", trace=None, upstream_head=b"")
for n in range(3000):
    observer.finish(call, "200", {"prompt_tokens": n, "completion_tokens": 1}, None)
    if n % 10 == 0:
        logging.getLogger("llmfleet.gateway").warning("warning %d", n)
observer.close()
logging.getLogger("llmfleet.gateway").warning("closing")
print("done", flush=True)
"""


def test_a_gateway_process_caps_the_log_file_its_stderr_writes(tmp_path: Path) -> None:
    """A process started as the agent starts a gateway (stdout and stderr appended to
    one file) with request logs on: its log file is capped, request lines and log
    records alike, and what it prints after a rotation lands in the live file."""
    path = tmp_path / "logs" / "gateways" / "gw-test.log"
    path.parent.mkdir(parents=True)
    env = {
        **os.environ,
        "LLMFLEET_REQUEST_LOGS": "1",
        "LLMFLEET_LOG_MAX_BYTES": str(LIMIT),
        "LLMFLEET_LOG_FILES": str(FILES),
    }
    with path.open("ab") as log:
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, path.read_text()[-2000:]
    lines = assert_capped(path)
    assert lines[-1] == "done"
    records = [json.loads(line) for line in lines[:-1]]
    assert records[-1]["message"] == "closing"
    tokens = [r["llmfleet.prompt_tokens"] for r in records if "llmfleet.prompt_tokens" in r]
    assert tokens == list(range(tokens[0], 3000))


def test_a_full_disk_loses_lines_not_requests() -> None:
    """Writing request lines to a full disk (``/dev/full``: every write is ENOSPC)
    drops them and counts them; it never raises into the request that wrote them."""
    with io.TextIOWrapper(io.FileIO("/dev/full", "w"), write_through=True) as stream:
        lines = JsonLinesBuffer(stream, service_name="gw", logger="r", max_lines=2)
        lines.write("a", {"n": 1})
        lines.write("b", {"n": 2})
        lines.flush()
    assert lines.dropped == 2


WRITER = """
import sys
for n in range(2000):
    print("line", n)
print("written", file=sys.stderr, flush=True)
sys.stdin.readline()
print("after")
"""


def test_an_engine_log_appended_by_another_process_is_capped(tmp_path: Path) -> None:
    """An engine's output file (appended to by the engine itself) is copied aside and
    truncated past the cap; the engine's next line starts the live file again."""
    path = tmp_path / "chat-0.log"
    with path.open("ab") as log:
        writer = subprocess.Popen(
            [sys.executable, "-u", "-c", WRITER],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.PIPE,
        )
    try:
        assert writer.stderr is not None
        assert writer.stderr.readline() == b"written\n"
        assert cap_appended_file(path, LogLimits(max_bytes=LIMIT, files=FILES))
        assert writer.stdin is not None
        writer.stdin.write(b"\n")
        writer.stdin.close()
        assert writer.wait(10) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        if writer.stderr is not None:
            writer.stderr.close()
    assert path.read_text() == "after\n"
    assert path.with_name("chat-0.log.1").read_text().splitlines()[-1] == "line 1999"
    assert not cap_appended_file(path, LogLimits(max_bytes=LIMIT, files=FILES))
