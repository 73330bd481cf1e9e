"""What a plan does to the monthly bill, line by line: create, scale, replace, delete."""

from __future__ import annotations

import pytest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.costs.delta import BillDelta, bill_delta
from llmfleet.plan.diff import ActualEnvironment, plan_changes, runtime_config
from llmfleet.spec.model import GatewaySpec, ResolvedEnvironment, ServiceSpec
from llmfleet.spec.resources import Resources
from tests.costs.helpers import CPU, H100_CLOUD, book, gpu_service

BOOK = book(cpu=CPU, cloud={"nvidia-h100": H100_CLOUD})


def env(**services: ServiceSpec) -> ResolvedEnvironment:
    return ResolvedEnvironment(name="production", gateway=GatewaySpec(), services=services)


def running(name: str, spec: ServiceSpec) -> list[ReplicaStatus]:
    return [
        ReplicaStatus(
            replica_id=f"production-{name}-{slot}-x",
            environment="production",
            service=name,
            slot=slot,
            runtime_hash=spec.runtime_hash(),
            engine="sim",
            engine_version="1",
            state=ReplicaState.READY,
            port=9000 + slot,
            config=runtime_config(spec),
        )
        for slot in range(spec.replicas)
    ]


def delta(desired: ResolvedEnvironment, replicas: list[ReplicaStatus]) -> BillDelta:
    actual = ActualEnvironment(replicas=replicas)
    plan = plan_changes(desired, actual, serial=1, spec_hash="h")
    by_id = {
        r.replica_id: (r.service, Resources.model_validate(r.config["resources"])) for r in replicas
    }
    return bill_delta(plan, desired=desired, running=by_id, book=BOOK)


def test_create_prices_the_new_replicas() -> None:
    """A new H100 service: +1 replica at $6.88 x 730 = +$5,022 a month, with the price's
    provider, SKU, unit price and date."""
    bill = delta(env(chat=gpu_service()), [])
    assert bill.lines == (
        "+1 replica of chat: +$5,022/month (1 nvidia-h100, AWS p5.48xlarge on-demand at "
        "$6.88/GPU-hour, as of 2026-11-09)",
    )
    assert bill.summary() == "Monthly bill: $0 -> $5,022 (+$5,022)"


def test_scale_up_and_down() -> None:
    """From 2 to 3 replicas: +1 replica; from 3 to 1: -2 replicas, -$10,045 a month."""
    up = delta(env(chat=gpu_service(replicas=3)), running("chat", gpu_service(replicas=2)))
    assert up.lines[0].startswith("+1 replica of chat: +$5,022/month")
    assert (up.before, up.after) == pytest.approx((2 * 5022.4, 3 * 5022.4))
    down = delta(env(chat=gpu_service(replicas=1)), running("chat", gpu_service(replicas=3)))
    assert down.lines[0].startswith("-2 replicas of chat: -$10,045/month (1 nvidia-h100")
    assert down.summary() == "Monthly bill: $15,067 -> $5,022 (-$10,045)"


def test_replace_shows_the_difference_only_when_the_price_changes() -> None:
    """1 -> 2 GPUs per replica: each of 2 replicas pays one more GPU, +$10,045 a month; a
    replace for another engine version on the same hardware changes nothing on the bill."""
    bigger = delta(
        env(chat=gpu_service(2, replicas=2)), running("chat", gpu_service(1, replicas=2))
    )
    assert bigger.lines == (
        "-/+2 replicas of chat: +$10,045/month (1 nvidia-h100 -> 2 nvidia-h100, AWS "
        "p5.48xlarge on-demand at $6.88/GPU-hour, as of 2026-11-09)",
    )
    new_engine = gpu_service(engine={"kind": "sim", "version": "2"})
    same = delta(env(chat=new_engine), running("chat", gpu_service()))
    assert same.lines == () and same.before == same.after


def test_delete_prices_what_the_deleted_replicas_ran_on() -> None:
    """A CPU service removed from the spec: -2 replicas at 1 vCPU and 1Gi each,
    2 x 0.035848 x 730 = $52.34 a month less."""
    cpu = gpu_service().model_copy(update={"resources": Resources(), "replicas": 2})
    bill = delta(env(), running("old", cpu))
    assert bill.lines == (
        "-2 replicas of old: -$52.34/month (1 vCPU, 1Gi, GCP on-demand at $0.03161/vCPU-hour "
        "+ $0.004237/GiB-hour, undated)",
    )


def test_an_unpriced_replica_says_so_and_the_rest_is_priced() -> None:
    odd = gpu_service().model_copy(update={"resources": Resources(gpus=1, gpu_type="nvidia-a100")})
    bill = delta(env(odd=odd, chat=gpu_service()), [])
    assert any(line.startswith("+1 replica of chat: +$5,022") for line in bill.lines)
    assert any("odd: cost unknown (no price for nvidia-a100" in line for line in bill.lines)
    assert "not priced: odd (nvidia-a100)" in bill.summary()
