"""An environment with ``backend: {kind: kubernetes}`` through the CLI, end to end:
plan, apply, status, a change, rollback and destroy against the fake API server
(with its controllers on) reached through a kubeconfig, as kubectl finds one.
The local runtime is never started."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.backends.kubernetes.cluster_cli import UNREACHABLE, cli, write_kubeconfig
from tests.backends.kubernetes.fake_api import FakeApiServer

NS = "shop-prod"
SPEC = """
name: shop
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    replicas: REPLICAS
environments:
  production:
    backend: {kind: kubernetes, context: fake, namespace: shop-prod}
"""


@pytest.fixture
def project(tmp_path: Path, cluster: FakeApiServer) -> Path:
    write_kubeconfig(tmp_path, {"other": UNREACHABLE, "fake": cluster.url}, current="other")
    write_spec(tmp_path, replicas=1)
    return tmp_path


def write_spec(folder: Path, *, replicas: int) -> None:
    (folder / "fleet.yaml").write_text(SPEC.replace("REPLICAS", str(replicas)))


def pods(cluster: FakeApiServer) -> list[str]:
    return sorted(name for kind, ns, name in cluster.objects if kind == "Pod" and ns == NS)


def test_plan_apply_status_change_rollback_destroy_on_a_cluster(
    project: Path, cluster: FakeApiServer
) -> None:
    planned = cli(project, "plan", "-e", "production", "--detailed-exitcode")
    assert planned.returncode == 2, planned.stderr
    assert "+ Deployment/chat" in planned.stdout and "+ NetworkPolicy/llmfleet-engines" in (
        planned.stdout
    )
    assert "Secret/chat-engine-key is made at apply" in planned.stdout
    assert cluster.objects == {}, "a plan changes nothing"
    assert all("dryRun=All" in path for method, path in cluster.requests if method == "PATCH")

    applied = cli(project, "apply", "-e", "production", "-y", "-m", "first")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete" in applied.stdout
    assert f"http://llmfleet-gateway.{NS}.svc:8080/v1" in applied.stdout
    secret = cluster.get("Secret", NS, "chat-engine-key")
    assert secret is not None and len(base64.b64decode(secret["data"]["api-key"])) >= 32
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert len(pods(cluster)) == 1 + 2, "one engine pod, two gateway pods"
    state = (project / ".llmfleet").rglob("*")
    assert not any(key.encode() in p.read_bytes() for p in state if p.is_file()), "key in state"

    again = cli(project, "plan", "-e", "production", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout and "Secret/" not in again.stdout

    status = cli(project, "status", "-e", "production")
    assert status.returncode == 0, status.stderr
    assert "node-a" in status.stdout and "ready" in status.stdout and "(gateway)" in status.stdout

    write_spec(project, replicas=2)
    scaled = cli(project, "plan", "-e", "production")
    assert "~ Deployment/chat" in scaled.stdout and "spec.replicas" in scaled.stdout
    assert cli(project, "apply", "-e", "production", "-y").returncode == 0
    assert len([p for p in pods(cluster) if p.startswith("chat-")]) == 2

    rolled = cli(project, "rollback", "--to", "1")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert len([p for p in pods(cluster) if p.startswith("chat-")]) == 1
    assert cluster.get("Secret", NS, "chat-engine-key") == secret, "the key is kept"

    destroyed = cli(project, "destroy", "-e", "production", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "- Deployment/chat" in destroyed.stdout
    assert [k for k in cluster.objects if k[1] == NS] == []
    history = cli(project, "history", "-e", "production")
    for kind in ("apply", "rollback", "destroy"):
        assert kind in history.stdout
    assert not (project / "home" / "agent.sock").exists(), "the local runtime never started"


def test_a_saved_plan_is_refused_once_the_cluster_changed(
    project: Path, cluster: FakeApiServer
) -> None:
    saved = project / "plan.json"
    assert cli(project, "plan", "-e", "production", "--out", str(saved)).returncode == 0
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "llmfleet-gateway", "namespace": NS,
                              "labels": {"llmfleet.io/fleet": "shop",
                                         "llmfleet.io/environment": "production",
                                         "app.kubernetes.io/managed-by": "llmfleet"}},
                 "data": {"services.json": "{}"}}, manager="kubectl")  # fmt: skip
    refused = cli(project, "apply", str(saved), "-e", "production")
    assert refused.returncode != 0
    assert "changed since the plan was made" in refused.stderr
    assert "0 objects" in refused.stderr and "1 objects" in refused.stderr


def test_a_cluster_that_cannot_be_reached_is_an_error_with_a_fix(project: Path) -> None:
    spec = (project / "fleet.yaml").read_text().replace("context: fake", "context: other")
    (project / "fleet.yaml").write_text(spec)
    done = cli(project, "plan", "-e", "production")
    assert done.returncode == 1
    assert "not reachable" in done.stderr and "kubectl cluster-info" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_autoscaler_s_replicas_are_taken_only_with_force_conflicts(
    project: Path, cluster: FakeApiServer
) -> None:
    assert cli(project, "apply", "-e", "production", "-y").returncode == 0
    chat = cluster.get("Deployment", NS, "chat")
    assert chat is not None
    chat["spec"]["replicas"] = 4
    cluster.put(chat, manager="hpa-controller", owns=[("spec", "replicas")])
    planned = cli(project, "plan", "-e", "production")
    assert ".spec.replicas owned by hpa-controller" in planned.stdout
    assert "--force-conflicts" in planned.stdout
    refused = cli(project, "apply", "-e", "production", "-y")
    assert refused.returncode == 1 and "owned by other field managers" in refused.stderr
    assert cluster.get("Deployment", NS, "chat")["spec"]["replicas"] == 4  # type: ignore[index]
    forced = cli(project, "apply", "-e", "production", "-y", "--force-conflicts")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert cluster.get("Deployment", NS, "chat")["spec"]["replicas"] == 1  # type: ignore[index]


def test_status_and_logs_show_why_a_pod_is_not_ready(project: Path, cluster: FakeApiServer) -> None:
    assert cli(project, "apply", "-e", "production", "-y").returncode == 0
    (name,) = [p for p in pods(cluster) if p.startswith("chat-")]
    pod = cluster.get("Pod", NS, name)
    assert pod is not None
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    pod["status"]["containerStatuses"][0].update(
        restartCount=3, ready=False,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    )  # fmt: skip
    cluster.put(pod)
    cluster.pod_logs[(NS, name)] = ["loading model", "allocating KV cache", "killed"]
    status = cli(project, "status", "-e", "production")
    assert "crash-loop" in status.stdout and "CrashLoopBackOff" in status.stdout
    assert "OOMKilled" in status.stdout and "log: allocating KV cache" in status.stdout
    assert "raise resources.memory" in status.stdout, "the fix is named"
    logs = cli(project, "logs", "chat", "-e", "production", "-n", "2")
    assert logs.returncode == 0, logs.stderr
    assert f"==> {name} <==" in logs.stdout and "loading model" not in logs.stdout
    assert "allocating KV cache" in logs.stdout and "killed" in logs.stdout


def test_a_gateway_setting_changed_rolls_the_cluster_gateway(
    project: Path, cluster: FakeApiServer
) -> None:
    """A routing change goes into the gateway's ConfigMap, which the gateway reads at
    start: its Deployment changes too, so its pods roll and use the new setting."""
    assert cli(project, "apply", "-e", "production", "-y").returncode == 0
    digest = "llmfleet.io/config-sha256"
    before = cluster.get("Deployment", NS, "llmfleet-gateway")["spec"]["template"]["metadata"]
    text = (project / "fleet.yaml").read_text()
    (project / "fleet.yaml").write_text(
        text.replace("replicas: 1", "replicas: 1\n    routing: {strategy: round-robin}")
    )
    planned = cli(project, "plan", "-e", "production")
    assert "~ ConfigMap/llmfleet-gateway" in planned.stdout, planned.stdout
    assert "~ Deployment/llmfleet-gateway" in planned.stdout, planned.stdout
    assert cli(project, "apply", "-e", "production", "-y").returncode == 0
    after = cluster.get("Deployment", NS, "llmfleet-gateway")["spec"]["template"]["metadata"]
    assert after["annotations"][digest] != before["annotations"][digest]
    config = cluster.get("ConfigMap", NS, "llmfleet-gateway")["data"]["services.json"]
    assert '"strategy": "round-robin"' in config
