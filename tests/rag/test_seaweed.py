"""The one SeaweedFS launcher (llmfleet.rag.seaweed) leaves no server behind: not when the
code using it fails, not when its command-line form is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from llmfleet.rag.seaweed import running_s3
from tests.fixtures.processes import stop_process


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_failure_inside_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the test's own failure"), running_s3(tmp_path) as s3:
        pid = s3.pid
        s3.client().create_bucket(Bucket="bucket")
        assert [b["Name"] for b in s3.client().list_buckets()["Buckets"]] == ["bucket"]
        raise RuntimeError("the test's own failure")
    assert not _alive(pid)


def test_the_command_writes_a_private_env_file_and_its_server_dies_with_it(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "s3.env"
    weed = 0
    launcher = subprocess.Popen(
        [sys.executable, "-m", "llmfleet.rag.seaweed", "--dir", str(tmp_path / "s3"),
         "--env-file", str(env_file)],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() or not env_file.read_text().endswith("\n"):
            assert launcher.poll() is None and time.monotonic() < deadline, "no env file"
            time.sleep(0.1)
        assert env_file.stat().st_mode & 0o777 == 0o600
        variables = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().split()
            if line != "export"
        )  # fmt: skip
        s3 = boto3.client(
            "s3",
            endpoint_url=variables["AWS_ENDPOINT_URL"],
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            region_name=variables["AWS_DEFAULT_REGION"],
        )
        assert s3.list_buckets()["Buckets"] == []
        weed = int(Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text())
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 15
        while _alive(weed):
            assert time.monotonic() < deadline, "weed outlived its launcher"
            time.sleep(0.1)
    finally:
        stop_process(launcher)
        if weed and _alive(weed):  # only when the test failed: leave nothing behind
            os.kill(weed, signal.SIGKILL)
