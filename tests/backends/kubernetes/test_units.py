"""Names, GPU scheduling and optional objects: the small rules of the renderer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmfleet.backends.kubernetes.context import INFERENCE_POOL_API
from llmfleet.backends.kubernetes.gpus import gpu_scheduling
from llmfleet.backends.kubernetes.names import DNS_1035, dns_label, engine_name, model_link
from llmfleet.errors import BackendError
from llmfleet.spec.resources import Resources
from tests.backends.kubernetes.cases import render


def test_a_short_name_is_kept_and_a_long_one_cut_with_a_hash() -> None:
    assert dns_label("chat", "engine-key") == "chat-engine-key"
    long_a, long_b = dns_label("a" * 60, "engine-key"), dns_label("a" * 61, "engine-key")
    assert len(long_a) == 63 and long_a != long_b
    assert dns_label("7b-chat").startswith("x-7b-chat-")


@given(st.lists(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True), min_size=1,
                max_size=3))  # fmt: skip
def test_every_name_made_is_a_dns_label(parts: list[str]) -> None:
    assert DNS_1035.fullmatch(dns_label(*parts))


def test_a_service_named_like_the_gateway_is_refused() -> None:
    with pytest.raises(BackendError, match="share its Kubernetes name"):
        engine_name("llmfleet-gateway")


def test_the_model_link_keeps_the_file_suffix() -> None:
    assert model_link("qwen", "hf:Qwen/Repo/q4.gguf") == "qwen.gguf"
    assert model_link("x", "pypi:pkg==1/dir/weights") == "x.model"


def test_gpu_type_becomes_node_affinity_and_an_unknown_one_is_refused_with_the_fix() -> None:
    known = gpu_scheduling(Resources(gpus=2, gpu_type="nvidia-h200"), {})
    terms = known["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0] == "NVIDIA-H200"
    assert gpu_scheduling(Resources(gpus=0, gpu_type="nvidia-h100"), {}) == {}
    with pytest.raises(BackendError) as caught:
        gpu_scheduling(Resources(gpus=1, gpu_type="acme-x1"), {})
    assert caught.value.hint is not None and "backend.gpu_products" in caught.value.hint
    own = gpu_scheduling(Resources(gpus=1, gpu_type="acme-x1"), {"acme-x1": ("ACME-X1",)})
    assert "ACME-X1" in str(own["affinity"])


def test_optional_objects_only_for_the_apis_the_cluster_serves() -> None:
    plain = {o["kind"] for o in render("quickstart", "production", apis=frozenset())}
    assert not plain & {"PodMonitor", "InferencePool"}
    pools = [o for o in render("quickstart", "production", apis=frozenset({INFERENCE_POOL_API}))
             if o["kind"] == "InferencePool"]  # fmt: skip
    assert [p["spec"]["targetPorts"] for p in pools] == [[{"number": 8000}]]


def test_engine_containers_name_their_key_variable() -> None:
    deployments = [o for o in render("gpu", "production") if o["kind"] == "Deployment"]
    keys = {
        d["metadata"]["name"]: [
            e["name"]
            for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
            if "valueFrom" in e
        ]
        for d in deployments
    }
    assert keys["qwen"] == ["VLLM_API_KEY"] and keys["tiny"] == ["LLMFLEET_SIM_API_KEY"]
