"""validate, promote, rollback and upgrade with production and staging on a cluster, through the
real CLI against the fake API server (controllers on), production in one namespace and
staging in another.

No gateway runs in the fake cluster, so a sim engine process per side stands in for the
pods behind each environment's gateway Service (both answer the OpenAI API the suites
speak). Production is reached as a CLI outside the cluster reaches it with ``kubectl
proxy``: through the API server's service proxy (the kubeconfig's API is plain http);
staging through the ``backend.gateway_url`` a platform team sets for its Ingress.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmfleet.backends.kubernetes.names import GATEWAY
from llmfleet.backends.kubernetes.reaching import gateway_url_from_here
from llmfleet.errors import BackendError
from tests.backends.kubernetes import cluster_cli
from tests.backends.kubernetes.cluster_cli import write_kubeconfig
from tests.backends.kubernetes.fake_api import FakeApiServer
from tests.fixtures.fleet import Fleet, free_port
from tests.fixtures.processes import stop_process

PROD, STAGING = "shop-prod", "shop-staging"
SUITE = """
service: chat
cases:
  - name: says-something
    prompt: Say hello.
    max_tokens: 8
    checks: [{regex: "\\\\w+"}]
"""
SPEC = """
name: shop
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "VERSION"}
    validation:
      quality: suite.yaml
      speed: {concurrency: [2], duration_s: 0.5, rounds: 2, max_tokens: 16}
      gate: {min_samples: 4, min_agreement: 1.0, max_ttft_p95_ratio: 5.0,
             min_throughput_ratio: 0.3}
environments:
  production:
    backend: {kind: kubernetes, context: fake, namespace: shop-prod}
  staging:
    backend: {kind: kubernetes, context: fake, namespace: shop-staging,
              gateway_url: "STAGING_URL/"}
"""


@pytest.fixture
def stand_ins() -> Iterator[dict[str, str]]:
    """A sim process per environment, standing in for its gateway's pods."""
    procs, urls = [], {}
    try:
        for side in (PROD, STAGING):
            port = free_port()
            argv = [sys.executable, "-m", "llmfleet.engines.sim", "--port", str(port),
                    "--model-name", "chat"]  # fmt: skip
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None and "listening" in proc.stdout.readline()
            urls[side] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for proc in procs:
            stop_process(proc)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def project(tmp_path: Path, cluster: FakeApiServer, stand_ins: dict[str, str]) -> Path:
    write_kubeconfig(tmp_path, {"fake": cluster.url}, current="fake")
    (tmp_path / "suite.yaml").write_text(SUITE)
    write_spec(tmp_path, version="1.1.0", staging_url=stand_ins[STAGING])
    cluster.upstreams[(PROD, GATEWAY)] = stand_ins[PROD]
    return tmp_path


def write_spec(folder: Path, *, version: str, staging_url: str) -> None:
    text = SPEC.replace("VERSION", version).replace("STAGING_URL", staging_url)
    (folder / "fleet.yaml").write_text(text)


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster_cli.cli(folder, *args, timeout=90)


def engine_version(cluster: FakeApiServer, namespace: str) -> str | None:
    """The sim version the chat Deployment's engine container runs (its ``--version``)."""
    chat = cluster.get("Deployment", namespace, "chat")
    if chat is None:
        return None
    (engine,) = [c for c in chat["spec"]["template"]["spec"]["containers"] if c["name"] == "engine"]
    argv = [*engine.get("command", []), *engine.get("args", [])]
    return str(argv[argv.index("--version") + 1])


def in_namespace(cluster: FakeApiServer, namespace: str) -> list[tuple[str, str, str]]:
    return [key for key in cluster.objects if key[1] == namespace]


def test_validate_promote_rollback_upgrade_with_both_environments_on_a_cluster(
    project: Path, cluster: FakeApiServer, stand_ins: dict[str, str]
) -> None:
    refused = cli(project, "validate")
    assert refused.returncode == 1 and "production is not running" in refused.stderr
    assert in_namespace(cluster, STAGING) == [], "nothing deployed before production runs"
    assert cli(project, "apply", "-e", "production", "-y").returncode == 0
    before = engine_version(cluster, PROD)
    benched = cli(project, "bench", "chat", "--duration", "0.3", "--concurrency", "1")
    assert benched.returncode == 0, benched.stdout + benched.stderr
    assert f"/namespaces/{PROD}/services/{GATEWAY}:http/proxy" in benched.stdout
    asked = cli(project, "ask", "chat", "Say hello.", "--max-tokens", "8")
    assert asked.returncode == 0 and asked.stdout.strip(), asked.stdout + asked.stderr

    write_spec(project, version="1.2.0", staging_url=stand_ins[STAGING])
    unvalidated = cli(project, "promote")
    assert unvalidated.returncode == 1 and "never validated" in unvalidated.stderr
    assert engine_version(cluster, PROD) == before, "a refused promote changes nothing"

    validated = cli(project, "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "validation passed" in validated.stdout
    (report,) = (project / "home" / "reports").glob("*/report.json")
    assert "says-something" in report.read_text(), "the quality suite ran on both sides"
    assert in_namespace(cluster, STAGING) == [], "staging's namespace is emptied afterwards"
    proxied = [p for m, p in cluster.requests if "/services/" in p and "/proxy/v1/" in p]
    through = f"/namespaces/{PROD}/services/{GATEWAY}:http/proxy"
    assert proxied and all(through in p for p in proxied), "production via the API's proxy"
    applied_to_staging = [p for m, p in cluster.requests
                          if m == "PATCH" and f"/namespaces/{STAGING}/" in p
                          and "dryRun" not in p]  # fmt: skip
    assert any("/deployments/chat" in p for p in applied_to_staging), "candidate was deployed"

    promoted = cli(project, "promote")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "promoted chat" in promoted.stdout
    after = engine_version(cluster, PROD)
    assert (before, after) == ("1.1.0", "1.2.0")

    rolled = cli(project, "rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "rolled back production to revision 1" in rolled.stdout
    assert engine_version(cluster, PROD) == before

    write_spec(project, version="1.1.0", staging_url=stand_ins[STAGING])  # what runs again
    upgraded = cli(project, "upgrade", "run", "chat", "--to", "1.2.0")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "upgraded chat 1.1.0 -> 1.2.0" in upgraded.stdout
    assert engine_version(cluster, PROD) == "1.2.0" and in_namespace(cluster, STAGING) == []
    assert 'version: "1.2.0"' in (project / "fleet.yaml").read_text(), "the spec is edited"
    history = cli(project, "history", "-e", "production")
    for kind in ("apply", "promote", "rollback"):
        assert kind in history.stdout


MIXED = """
name: shop
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "VERSION"}
    validation:
      quality: suite.yaml
      speed: {concurrency: [2], duration_s: 0.5, rounds: 2, max_tokens: 16}
      gate: {min_samples: 4, min_agreement: 1.0, max_ttft_p95_ratio: 5.0,
             min_throughput_ratio: 0.3}
environments:
  production:
    backend: {kind: kubernetes, context: fake, namespace: shop-prod}
  staging: {gateway: {port: STAGING_PORT}}
"""


def test_staging_on_this_machine_validates_a_candidate_for_production_on_a_cluster(
    fleet: Fleet, cluster: FakeApiServer, stand_ins: dict[str, str]
) -> None:
    """The mix a team starts with: staging runs here (the real agent, gateway and sim
    engine), production on the cluster; plain status shows both, down stops only here."""
    write_kubeconfig(fleet.root, {"fake": cluster.url}, current="fake")
    (fleet.root / "suite.yaml").write_text(SUITE)
    cluster.upstreams[(PROD, GATEWAY)] = stand_ins[PROD]
    env = {"KUBECONFIG": str(fleet.root / "kubeconfig")}
    fleet.write(MIXED.replace("VERSION", "1.1.0"))
    fleet.run("apply", "-e", "production", "-y", env=env)
    fleet.write(MIXED.replace("VERSION", "1.2.0"))

    validated = fleet.run("validate", "--keep", env=env)
    assert "validation passed" in validated.stdout
    assert [r.state for r in fleet.replicas("staging")] == ["ready"], "kept, on this machine"
    assert any("/proxy/v1/chat/completions" in p for _, p in cluster.requests)
    status = fleet.run("status", env=env, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Pods in namespace shop-prod" in status.stdout and "node-a" in status.stdout
    assert f"gateway staging: http://127.0.0.1:{fleet.staging_port}" in status.stdout

    fleet.run("promote", env=env)
    assert engine_version(cluster, PROD) == "1.2.0"
    down = fleet.run("down", env=env)
    assert "stopped the local runtime" in down.stdout
    assert "production (namespace shop-prod)" in down.stdout
    assert not fleet.backend.running() and engine_version(cluster, PROD) == "1.2.0"


def reach(**overrides: object) -> str:
    where: dict[str, object] = {"environment": "staging", "namespace": "shop-staging",
                                "port": 8080, "configured": None, "api_server": None,
                                "in_cluster": False}  # fmt: skip
    return gateway_url_from_here(**{**where, **overrides})  # type: ignore[arg-type]


def test_the_gateway_is_reached_by_the_configured_url_then_in_cluster_then_the_proxy() -> None:
    ingress = "https://llm.example.internal/shop"
    assert reach(configured=ingress + "/", in_cluster=True, api_server="http://a") == ingress
    assert reach(in_cluster=True, api_server="http://a") == (
        f"http://{GATEWAY}.shop-staging.svc:8080"
    )
    assert reach(api_server="http://127.0.0.1:8001/") == (
        f"http://127.0.0.1:8001/api/v1/namespaces/shop-staging/services/{GATEWAY}:http/proxy"
    )


def test_a_tls_api_without_a_gateway_url_is_refused_with_the_fix() -> None:
    with pytest.raises(BackendError) as caught:
        reach(api_server="https://cluster.example:6443")
    assert "cannot be reached" in caught.value.message and caught.value.hint is not None
    assert "environments.staging.backend.gateway_url" in caught.value.hint
    assert "kubectl port-forward -n shop-staging" in caught.value.hint
