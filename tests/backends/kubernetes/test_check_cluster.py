"""``llmfleet check`` says where a cluster environment's gateway is, not a port of this
machine that it never takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SPEC = """
name: shop
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
environments:
  production:
    backend: {kind: kubernetes, context: fake, namespace: shop-prod,
              gateway_url: "https://llm.example.internal"}
  staging:
    backend: {kind: kubernetes, context: fake}
  dev:
    gateway: {port: 8099}
"""


def check(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmfleet", "check", "-f", str(folder / "fleet.yaml"), *args],
        capture_output=True, text=True, timeout=60, cwd=folder, check=False,
        env={**os.environ, "COLUMNS": "1000"},
    )  # fmt: skip


def test_check_names_a_cluster_gateway_by_namespace_and_url(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(SPEC)
    done = check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines() if line.startswith("ok")}
    assert lines["ok production"].endswith(
        "gateway on kubernetes (context fake, namespace shop-prod) at https://llm.example.internal"
    )
    assert lines["ok staging"].endswith(
        "gateway on kubernetes (context fake, namespace shop-staging)"
    )
    assert lines["ok dev"].endswith("gateway 127.0.0.1:8099")

    data = json.loads(check(tmp_path, "--json").stdout)
    gateways = {e["name"]: e["gateway"] for e in data["environments"]}
    assert gateways == {
        "production": "https://llm.example.internal",
        "staging": "kubernetes: context fake, namespace shop-staging",
        "dev": "127.0.0.1:8099",
    }
