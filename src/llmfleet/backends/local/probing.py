"""HTTP probes of a local replica: readiness, liveness and whether it is busy.

Each carries the replica's API key when it has one: the engine may want it on
any path (llama-server does on ``/metrics``; its ``/health`` is open).

A port answering is no proof that *our* replica answers: when it could not bind,
another project's engine may hold the port, and passing its probes routed our
clients to its model. So readiness first proves the engine knows this replica's
key (``knows_own_key``): it must refuse a wrong key, and then accept ours.
"""

from __future__ import annotations

from dataclasses import replace

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from llmfleet.backends.base import ReplicaSpec
from llmfleet.engines.base import Probe


def key_headers(api_key: str | None) -> dict[str, str]:
    """The header that gives an engine its API key (none without a key); pure."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


NOT_THE_KEY = "llmfleet-not-the-replica-key"
"""What the identity check presents: any engine that knows its key refuses it."""
REFUSED = frozenset({401, 403})


async def run_probe(
    session: aiohttp.ClientSession, base: str, probe: Probe, *, api_key: str | None = None
) -> bool:
    """True if the probe answers 2xx in time. A body means POST (a real generation).
    401 or 403 is never ready: that engine does not know ``api_key``."""
    status = await probe_status(session, base, probe, api_key=api_key)
    return status is not None and 200 <= status < 300


async def probe_status(
    session: aiohttp.ClientSession, base: str, probe: Probe, *, api_key: str | None
) -> int | None:
    """The HTTP status the probe gets; None when nothing answers in time."""
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
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


def guarded_probe(spec: ReplicaSpec) -> Probe | None:
    """A readiness probe behind the engine's key: one with a body (a generation),
    which every engine guards; ``/health`` is open on llama-server, vLLM and the sim.
    Pure."""
    return next((probe for probe in spec.readiness if probe.body is not None), None)


async def knows_own_key(
    session: aiohttp.ClientSession, base: str, spec: ReplicaSpec, *, api_key: str | None
) -> bool:
    """True unless the engine on ``base`` is proved not to be this replica: it must
    refuse a wrong key (401/403) on a guarded path, which an engine without a key,
    or with any key but one it checks, does not. Its accepting ``api_key`` is then
    what its readiness probes check. Without a key or a guarded probe nothing can
    be proved, and this is True, as before keys."""
    probe = guarded_probe(spec)
    if api_key is None or probe is None:
        return True
    refusal = replace(probe, body={}, timeout_s=min(probe.timeout_s, 5.0))
    return await probe_status(session, base, refusal, api_key=NOT_THE_KEY) in REFUSED


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
