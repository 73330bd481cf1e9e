"""HTTP probes of a local replica: readiness, liveness and whether it is busy.

Each carries the replica's API key when it has one: the engine may want it on
any path (llama-server does on ``/metrics``; its ``/health`` is open).
"""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from llmfleet.backends.base import ReplicaSpec
from llmfleet.engines.base import Probe


def key_headers(api_key: str | None) -> dict[str, str]:
    """The header that gives an engine its API key (none without a key); pure."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def run_probe(
    session: aiohttp.ClientSession, base: str, probe: Probe, *, api_key: str | None = None
) -> bool:
    """True if the probe answers 2xx in time. A body means POST (a real generation)."""
    timeout = aiohttp.ClientTimeout(total=probe.timeout_s)
    headers = key_headers(api_key)
    try:
        if probe.body is None:
            request = session.get(base + probe.path, timeout=timeout, headers=headers)
        else:
            request = session.post(
                base + probe.path, json=dict(probe.body), timeout=timeout, headers=headers
            )
        async with request as response:
            await response.read()
            return 200 <= response.status < 300
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def engine_busy(
    session: aiohttp.ClientSession, base: str, spec: ReplicaSpec, *, api_key: str | None = None
) -> bool | None:
    """True if any of the engine's busy gauges is above 0; None if it cannot tell."""
    if not spec.busy_series:
        return None
    try:
        async with session.get(
            base + spec.metrics_path,
            timeout=aiohttp.ClientTimeout(total=2),
            headers=key_headers(api_key),
        ) as response:
            if response.status != 200:
                return None
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    return busy_in_metrics(text, spec.busy_series)


def busy_in_metrics(text: str, series: tuple[str, ...]) -> bool | None:
    """Pure: whether any sample of the named series is above 0 in Prometheus text."""
    wanted = set(series)
    seen = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                seen = True
                if sample.value > 0:
                    return True
    return False if seen else None
