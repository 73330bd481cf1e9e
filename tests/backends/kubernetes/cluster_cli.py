"""The real CLI against the fake API server, found through a kubeconfig as kubectl
finds one; the local runtime is never started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

LLMFLEET = [sys.executable, "-m", "llmfleet"]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers there
# Variables of the test process that would point the CLI elsewhere.
LEAKED = ("LLMFLEET_KUBERNETES_API", "KUBERNETES_SERVICE_HOST")


def write_kubeconfig(folder: Path, servers: dict[str, str], *, current: str) -> None:
    """``folder/kubeconfig`` with a context per name in ``servers`` (name -> API URL)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in servers.items()],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "nobody"}}
                     for name in servers],
    }  # fmt: skip
    (folder / "kubeconfig").write_text(yaml.safe_dump(config))


def cli(
    folder: Path, *args: str, env: dict[str, str | None] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``llmfleet ARGS -f folder/fleet.yaml`` with that folder's kubeconfig and home;
    ``env`` adds variables, or removes those it maps to None."""
    full = {**os.environ, "KUBECONFIG": str(folder / "kubeconfig"), "COLUMNS": "1000",
            "LLMFLEET_HOME": str(folder / "home")}  # fmt: skip
    for name, value in {**dict.fromkeys(LEAKED), **(env or {})}.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return subprocess.run(
        [*LLMFLEET, *args, "-f", str(folder / "fleet.yaml")],
        capture_output=True, text=True, timeout=timeout, check=False, env=full, cwd=folder,
    )  # fmt: skip
