"""Every panel of the Grafana export, queried in a real Prometheus scraping a running fleet.

The JSON's shape says little: a query can name a series that exists and still
return nothing (a ratio whose numerator has no series is "No data", not 0). So
the test starts Debian's ``prometheus`` on a free port with a 1 s scrape of the
agent's fleet endpoint, drives a sim fleet through the gateway (one replica
answering 500 for a retry, one crashing mid-stream for an ejection and a
resumed stream), then runs each panel's PromQL with the template variables
filled in: every query must parse, and every panel whose series a sim fleet
produces must return data.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmfleet.observe.grafana import grafana_dashboard
from tests.fixtures.fleet import Fleet, free_port
from tests.fixtures.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0", args: ["--ttft", "0.005", "--tps", "400"]}
    replicas: 2
    routing: {strategy: round-robin}
    labels: {team: search, tier: gold, owner: alice}
    alerts: [{kind: ttft_p95, for: 0s, threshold: 0.0001}]
environments:
  production: {gateway: {port: GATEWAY_PORT}}
observability:
  metrics_port: METRICS_PORT
  evaluate_every_s: 0.5
  metric_labels: [team, tier]
"""
NO_DATA_ON_SIM = {
    "KV cache usage": "vLLM's and older llama-server builds' gauge; the sim has no KV cache",
    "Engine prefix cache reuse": "vLLM's and llama-server's cache counters; the sim has none",
    "GPU temperature": "no GPU on a test machine",
    "GPU power": "no GPU on a test machine",
    "GPU memory used": "no GPU on a test machine",
    "GPU utilisation": "no GPU on a test machine",
    "GPU health and errors": "no GPU on a test machine",
    "Documents and chunks indexed": "no pipeline ran (tests/rag reads these series)",
    "Skipped documents and lag": "no pipeline ran (tests/rag reads these series)",
}
"""Panels that only parse here; every other panel must return data."""
FAILOVER = (
    "Retries before the first token",
    "Streams resumed on another replica",
    "Replica ejections",
)


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    found = shutil.which("prometheus")
    if found is None:  # the package that brings promtool brings the server
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-promtool.sh")], check=True)
        found = shutil.which("prometheus")
    assert found is not None
    return found


def start_prometheus(binary: str, tmp: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on a free loopback port, its config, data and log all under ``tmp``."""
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: llmfleet\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    log.close()
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def prometheus(prometheus_bin: str, tmp_path: Path) -> Iterator[Callable[[str], Callable[[], str]]]:
    """A starter: call it with the scrape target, then call what it returns to wait for
    Prometheus to be ready (start it early: it loads while the fleet starts). The process
    is stopped whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []
    home = tmp_path / "prom"

    def start(target: str) -> Callable[[], str]:
        proc, url = start_prometheus(prometheus_bin, home, target)
        procs.append(proc)

        def wait_ready() -> str:
            wait_until(lambda: ready(url), what="Prometheus ready", proc=proc, log=home)
            return url

        return wait_ready

    home.mkdir()
    try:
        yield start
    finally:
        for proc in procs:
            stop_process(proc)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(
    predicate: Callable[[], Any],
    *,
    what: str,
    timeout: float = 30,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = (log / "prometheus.log").read_text() if log else ""
            raise AssertionError(f"prometheus exited {proc.returncode}: {text[-2000:]}")
        if result := predicate():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def query(url: str, promql: str) -> dict[str, Any]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", f"{promql}\n{body}"
    return dict(body["data"])


def has_data(url: str, promql: str) -> bool:
    return bool(query(url, promql)["result"])


def eventually_has_data(url: str, promql: str, timeout: float = 8) -> bool:
    """Rates need two scrapes of a series: a new one gets a few seconds."""
    deadline = time.monotonic() + timeout
    while not has_data(url, promql):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def filled(expr: str, instance: str) -> str:
    """A panel query as Grafana sends it: variables replaced, one value each."""
    for name, value in (
        ("__rate_interval", "1m"),
        ("environment", "production"),
        ("service", "chat"),
        ("instance", re.escape(instance)),
    ):
        expr = expr.replace(f"${name}", value.replace("\\", "\\\\"))
    return expr


def sim_faults(fleet: Fleet, replica: Any, **faults: Any) -> None:
    response = httpx.post(
        f"{replica.url}/sim/faults", json=faults, timeout=10, headers=fleet.engine_headers(replica)
    )
    assert response.status_code == 200, response.text


def stream(fleet: Fleet, content: str) -> str:
    body = {
        "model": "chat",
        "stream": True,
        "max_tokens": 12,
        "messages": [{"role": "user", "content": content}],
    }
    with httpx.stream(
        "POST", f"http://127.0.0.1:{fleet.gateway_port}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        return "".join(response.iter_text())


def drive_failover(fleet: Fleet) -> None:
    """A retry (one replica answers 500), then a crash mid-stream: ejection and resume."""
    first, second = sorted(fleet.ready(), key=lambda r: r.slot)
    sim_faults(fleet, first, error_rate=1.0)
    for i in range(4):  # round-robin: two of them try the failing replica first
        fleet.chat(f"retry {i}", max_tokens=4)
    sim_faults(fleet, first, error_rate=0.0)
    sim_faults(fleet, second, crash_after_tokens=3)
    for i in range(4):
        assert "[DONE]" in stream(fleet, f"stream {i}")
        if second.replica_id not in {r.replica_id for r in fleet.ready()} or any(
            r.pid != second.pid for r in fleet.ready() if r.replica_id == second.replica_id
        ):
            break


def check_labels(fleet: Fleet, url: str) -> None:
    """The allow-listed spec labels are on the fleet's and the gateway's series (owner,
    not on the list, is not); `status` shows every label."""
    for family in (
        "llmfleet_gateway_requests_total",
        "llmfleet_replica_state",
        "llmfleet_requests_running",
        "llmfleet_gateway_retries_total",
    ):
        assert has_data(url, f'{family}{{team="search",tier="gold"}}'), family
    assert not has_data(url, '{owner!=""}')
    assert "owner=alice,team=search,tier=gold" in fleet.run("status").stdout


@pytest.mark.timeout(120)
def test_every_panel_query_and_the_allowed_labels_in_a_real_prometheus_scraping_a_fleet(
    fleet: Fleet, prometheus: Callable[[str], Callable[[], str]]
) -> None:
    metrics_port = free_port()
    fleet.write(SPEC.replace("METRICS_PORT", str(metrics_port)))
    instance = f"127.0.0.1:{metrics_port}"
    wait_ready = prometheus(instance)
    fleet.run("apply", "--yes")
    url = wait_ready()
    # the failure counters start at 0, so the first failure shows in rate() and increase()
    for family in ("retries", "resumed_streams", "ejections"):
        wait_until(
            lambda f=family: has_data(url, f"llmfleet_gateway_{f}_total == 0"),
            what=f"{family} at 0 before any failure",
        )
    drive_failover(fleet)
    wait_until(
        lambda: has_data(url, "llmfleet_gateway_resumed_streams_total > 0"),
        what="the resumed stream in Prometheus",
    )

    dashboard = grafana_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"environment", "service", "instance"} <= set(variables)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    assert set(NO_DATA_ON_SIM) | set(FAILOVER) <= titles
    for panel in panels:
        if panel["title"].startswith(("GPU", "CPU")):
            assert all("$instance" in t["expr"] for t in panel["targets"]), panel["title"]
    empty = []
    for panel in panels:
        for target in panel["targets"]:
            promql = filled(target["expr"], instance)
            query(url, promql)  # parses and runs: status success
            if panel["title"] not in NO_DATA_ON_SIM and not eventually_has_data(url, promql):
                empty.append(promql)
    assert empty == []
    check_labels(fleet, url)
    for title in FAILOVER:
        panel = next(p for p in panels if p["title"] == title)
        promql = filled(panel["targets"][0]["expr"], instance).replace("[1m]", "[1h]")
        assert any(float(s["value"][1]) > 0 for s in query(url, promql)["result"]), title
