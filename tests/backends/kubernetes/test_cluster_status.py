"""Plain ``status``, ``down`` and ``destroy`` (no ``-e``) with environments on a cluster,
through the real CLI against the fake API server (controllers on): status shows every
environment of the spec, down says it leaves the cluster alone and does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backends.kubernetes.cluster_cli import UNREACHABLE, cli, write_kubeconfig
from tests.backends.kubernetes.fake_api import FakeApiServer

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
def project(tmp_path: Path, cluster: FakeApiServer) -> Path:
    write_kubeconfig(tmp_path, {"fake": cluster.url, "gone": UNREACHABLE}, current="fake")
    (tmp_path / "fleet.yaml").write_text(SPEC)
    return tmp_path


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
