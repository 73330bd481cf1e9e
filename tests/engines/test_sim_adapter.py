"""SimAdapter: argv, container, probes, versions and the metric map it promises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmfleet.engines.base import EngineAdapter, Probe
from llmfleet.engines.sim.__main__ import build_parser, config_from_args
from llmfleet.engines.sim.adapter import VERSIONS, SimAdapter
from llmfleet.engines.sim.testing import serve_sim
from llmfleet.errors import EngineVersionError
from llmfleet.spec.model import EngineKind, EngineSpec, ModelSpec, ServiceSpec


def service(version: str = "1.2.0", *args: str) -> ServiceSpec:
    engine = EngineSpec(kind=EngineKind.SIM, version=version, args=args, env={"X": "1"})
    return ServiceSpec(model=ModelSpec(source="sim:tiny"), engine=engine, slots=3, context=512)


def test_adapter_satisfies_the_engine_protocol() -> None:
    adapter: EngineAdapter = SimAdapter()
    assert adapter.kind is EngineKind.SIM and adapter.needs_model_file is False


def test_local_command_runs_this_python_on_loopback() -> None:
    launch = SimAdapter().local_command(
        service("1.1.0", "--tps", "0"),
        executable=Path(sys.executable),
        model_path=None,
        served_name="chat",
    )
    assert launch.argv[:7] == (
        sys.executable,
        "-m",
        "llmfleet.engines.sim",
        "--port",
        "{port}",
        "--host",
        "127.0.0.1",
    )
    assert launch.env == {"X": "1"}
    argv = [arg.replace("{port}", "9") for arg in launch.argv[3:]]
    config, _ = config_from_args(build_parser().parse_args(argv))
    assert (config.model_name, config.slots, config.context, config.version) == (
        "chat",
        3,
        512,
        "1.1.0",
    )
    assert config.ttft == VERSIONS["1.1.0"].ttft
    assert config.tps == 0, "engine.args come last and override the version's profile"


def test_container_uses_a_local_image_name_and_listens_in_the_pod() -> None:
    spec = SimAdapter().container(service(), model_uri="sim:tiny", served_name="chat")
    assert spec.image == "llmfleet-sim:1.2.0"
    assert "--allow-remote" in spec.args and str(spec.port) in spec.args


def test_versions_newest_first_and_unknown_ones_refused(tmp_path: Path) -> None:
    adapter = SimAdapter()
    assert adapter.available_versions() == ["1.2.0", "1.1.0", "1.0.0"]
    assert adapter.install("1.0.0", cache_dir=tmp_path, progress=print) == Path(sys.executable)
    assert adapter.installed("1.2.0", cache_dir=tmp_path) == Path(sys.executable)
    assert adapter.installed("9.9.9", cache_dir=tmp_path) is None
    adapter.check_runnable(service())
    with pytest.raises(EngineVersionError, match=r"9\.9\.9") as raised:
        adapter.check_runnable(service("9.9.9"))
    assert raised.value.hint and "1.2.0" in raised.value.hint


def test_probes_and_continuation() -> None:
    adapter = SimAdapter()
    assert adapter.readiness == (
        Probe("/health"),
        Probe("/v1/completions", body={"prompt": "ping", "max_tokens": 1}),
    )
    assert adapter.liveness == Probe("/health")
    assert adapter.continuation_fields() == {}


async def test_probes_pass_and_mapped_metrics_exist_on_a_real_sim() -> None:
    adapter = SimAdapter()
    async with serve_sim() as sim:
        for probe in adapter.readiness:
            if probe.body is None:
                response = await sim.client.get(probe.path)
            else:
                response = await sim.client.post(probe.path, json=dict(probe.body))
            assert response.status == 200
        metrics = await (await sim.client.get(adapter.metrics_path)).text()
    series = {
        line.split("{")[0].split(" ")[0]
        for line in metrics.splitlines()
        if not line.startswith("#")
    }
    for name in adapter.metrics.names:
        assert name in series or f"{name}_count" in series
    assert adapter.metrics.queue_series in series and adapter.metrics.running_series in series
    assert set(adapter.metrics.names.values()) == {
        "requests_running",
        "requests_waiting",
        "prompt_tokens_total",
        "generation_tokens_total",
        "time_to_first_token_seconds",
    }
