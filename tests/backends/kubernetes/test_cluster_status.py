"""Plain ``status``, ``down`` and ``destroy`` (no ``-e``) with environments on a cluster,
through the real CLI against the fake API server (controllers on): status shows every
environment of the spec, down says it leaves the cluster alone and does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.backends.kubernetes.fake_api import FakeApiServer

LLMFLEET = [sys.executable, "-m", "llmfleet"]
SPEC = """
name: shop
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
environments:
  production:
    backend: {kind: kubernetes, context: fake, namespace: shop-prod}
  staging:
    backend: {kind: kubernetes, context: fake, namespace: shop-staging}
  edge:
    backend: {kind: kubernetes, context: gone, namespace: shop-edge}
"""


@pytest.fixture
def cluster() -> Iterator[FakeApiServer]:
    with FakeApiServer(controller=True) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, cluster: FakeApiServer) -> Path:
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": cluster.url}},
                     {"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "nobody"}},
                     {"name": "gone", "context": {"cluster": "gone", "user": "nobody"}}],
    }  # fmt: skip
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    (tmp_path / "fleet.yaml").write_text(SPEC)
    return tmp_path


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(folder / "kubeconfig"), "COLUMNS": "1000",
           "LLMFLEET_HOME": str(folder / "home")}  # fmt: skip
    env.pop("LLMFLEET_KUBERNETES_API", None)
    return subprocess.run(
        [*LLMFLEET, *args, "-f", str(folder / "fleet.yaml")],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=folder,
    )  # fmt: skip


def crash_loop(cluster: FakeApiServer, namespace: str) -> str:
    """Make the engine pod of ``namespace`` crash-loop after an OOM kill; its name."""
    (name,) = [n for k, ns, n in cluster.objects if (k, ns) == ("Pod", namespace)
               and n.startswith("chat-")]  # fmt: skip
    pod = cluster.get("Pod", namespace, name)
    assert pod is not None
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    pod["status"]["containerStatuses"][0].update(
        restartCount=4, ready=False,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 80s"}},
        lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    )  # fmt: skip
    cluster.put(pod)
    cluster.pod_logs[(namespace, name)] = ["loading model", "out of memory"]
    return name


def test_plain_status_shows_every_environment_and_down_leaves_the_cluster_alone(
    project: Path, cluster: FakeApiServer
) -> None:
    for env in ("production", "staging"):
        assert cli(project, "apply", "-e", env, "-y").returncode == 0
    broken = crash_loop(cluster, "shop-staging")

    status = cli(project, "status")
    assert status.returncode == 1, "one cluster could not be read"
    out = status.stdout
    assert "Pods in namespace shop-prod" in out and "Pods in namespace shop-staging" in out
    assert "node-a" in out and broken in out and "CrashLoopBackOff" in out
    assert "OOMKilled" in out and "log: out of memory" in out
    assert "edge (namespace shop-edge)" in out and "not reachable" in out
    assert "kubectl cluster-info" in out, "the unreadable cluster's fix"
    assert "local runtime is not running" not in out, "no environment runs locally"
    assert "Traceback" not in status.stderr

    document = json.loads(cli(project, "status", "--json").stdout)
    assert document["running"] is True
    by_env = {(r["environment"], r["state"]) for r in document["replicas"]}
    assert by_env == {("production", "ready"), ("staging", "crash-loop")}
    assert {g["environment"] for g in document["gateways"]} == {"production", "staging"}
    assert any(w.startswith("edge: ") for w in document["warnings"])

    objects = dict(cluster.objects)
    down = cli(project, "down")
    assert down.returncode == 0, down.stderr
    assert "the local runtime was not running" in down.stdout
    assert "production (namespace shop-prod), staging (namespace shop-staging)" in down.stdout
    assert "leaves the environments on a cluster as they are" in down.stdout
    assert dict(cluster.objects) == objects, "down changed nothing on the cluster"

    destroyed = cli(project, "destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert [k for k in cluster.objects if k[1] == "shop-prod"] == [], "production is gone"
    assert [k for k in cluster.objects if k[1] == "shop-staging"], "staging is kept"
    assert not (project / "home" / "agent.sock").exists(), "the local runtime never started"
