"""The one Prometheus endpoint of a machine: every replica and gateway, normalised.

``FleetScraper`` reads each target's ``/metrics`` concurrently (one slow or dead
replica costs one timeout, not a sum of them), normalises engine series, adds
series of its own for replica state, restarts and uptime, and keeps the result
for ``cache_s`` so that Prometheus, ``llmfleet top`` and the alert loop scraping
at once cost one round of requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.observe.exposition import Labels, Sample, parse_text, render_samples
from llmfleet.observe.normalise import normalise_metrics
from llmfleet.spec.observability import MAX_LABEL_VALUE_CHARS

SampleSource = Callable[[], list[Sample]]
DerivedSource = Callable[[list[Sample]], list[Sample]]
"""Series computed from a scrape's own samples (costs from the token counters)."""
ServiceLabels = Callable[[str, str], Labels]
"""(environment, service) -> the spec labels to add to its series (the allow-listed ones)."""


@dataclass(frozen=True)
class Target:
    """A process to scrape: a replica (engine metrics) or a gateway (llmfleet's own)."""

    status: ReplicaStatus
    metrics_path: str = "/metrics"
    api_key: str | None = field(default=None, repr=False)
    """the engine's API key: llama-server wants it on ``/metrics`` too."""

    @property
    def is_gateway(self) -> bool:
        return self.status.engine == "gateway"


def target_labels(status: ReplicaStatus) -> dict[str, str]:
    return {
        "environment": status.environment,
        "service": status.service,
        "replica": status.replica_id,
        "engine": status.engine,
    }


def allowed_labels(labels: Mapping[str, str], allowed: Sequence[str]) -> Labels:
    """The labels named in ``allowed`` (``observability.metric_labels``), values capped; pure."""
    return tuple((name, labels[name][:MAX_LABEL_VALUE_CHARS]) for name in allowed if name in labels)


def replica_samples(status: ReplicaStatus, *, now: float, extra: Labels = ()) -> list[Sample]:
    """State (one series per state, 1 for the current one), restarts and uptime; pure."""
    ours = (*target_labels(status).items(), ("engine_version", status.engine_version), *extra)
    out = [
        Sample(
            "llmfleet_replica_state",
            "gauge",
            "llmfleet_replica_state",
            (*ours, ("state", str(state))),
            1.0 if status.state is state else 0.0,
        )
        for state in ReplicaState
    ]
    out.append(
        Sample(
            "llmfleet_replica_restarts_total",
            "counter",
            "llmfleet_replica_restarts_total",
            ours,
            float(status.restarts),
        )
    )
    uptime = now - status.ready_at if status.ready_at and status.state is ReplicaState.READY else 0
    out.append(
        Sample(
            "llmfleet_replica_uptime_seconds",
            "gauge",
            "llmfleet_replica_uptime_seconds",
            ours,
            max(0.0, uptime),
        )
    )
    return out


def gateway_samples(
    text: str, environment: str, service_labels: ServiceLabels | None = None
) -> list[Sample]:
    """A gateway's own ``llmfleet_gateway_*`` series with its environment added, and the
    labels of the service a series is about (``service_labels``); pure given that."""
    extra: dict[str, Labels] = {}

    def of(labels: Labels) -> Labels:
        service = dict(labels).get("service")
        if service is None or service_labels is None:
            return ()
        if service not in extra:
            extra[service] = service_labels(environment, service)
        return extra[service]

    return [
        Sample(
            raw.family,
            raw.kind if raw.kind != "unknown" else "untyped",
            raw.name,
            (("environment", environment), *raw.labels, *of(raw.labels)),
            raw.value,
        )
        for raw in parse_text(text)
        if raw.name.startswith("llmfleet_gateway_") and not raw.name.endswith("_created")
    ]


class FleetScraper:
    """Scrapes every target concurrently, cached for ``cache_s``; see the module doc."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        targets: Callable[[], Sequence[Target]],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        cache_s: float = 1.0,
        timeout_s: float = 2.0,
        extra: Sequence[SampleSource] = (),
        derived: Sequence[DerivedSource] = (),
        service_labels: ServiceLabels = lambda _environment, _service: (),
    ) -> None:
        self._session = session
        self._targets = targets
        self._clock = clock
        self._wall = wall_clock
        self.cache_s = cache_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.extra = list(extra)
        self.derived = list(derived)
        self.service_labels = service_labels
        self._cached: tuple[float, list[Sample]] | None = None
        self._inflight: asyncio.Future[list[Sample]] | None = None

    async def samples(self) -> list[Sample]:
        """The latest samples; concurrent callers share one scrape."""
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self.cache_s:
            return self._cached[1]
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._scrape())
        inflight = self._inflight
        try:
            result = await asyncio.shield(inflight)
        finally:
            if inflight.done():
                self._inflight = None
        self._cached = (self._clock(), result)
        return result

    async def render(self) -> str:
        return render_samples(await self.samples())

    async def _scrape(self) -> list[Sample]:
        targets = list(self._targets())
        started = self._clock()
        parts = await asyncio.gather(*(self._scrape_one(t) for t in targets))
        out = [s for part in parts for s in part]
        for source in self.extra:
            out.extend(source())
        for derive in self.derived:
            out.extend(derive(list(out)))
        out.append(
            Sample(
                "llmfleet_scrape_duration_seconds",
                "gauge",
                "llmfleet_scrape_duration_seconds",
                (),
                self._clock() - started,
            )
        )
        return out

    async def _scrape_one(self, target: Target) -> list[Sample]:
        status = target.status
        text = await self._fetch(f"{status.url}{target.metrics_path}", target.api_key)
        extra = () if target.is_gateway else self.service_labels(status.environment, status.service)
        labels = target_labels(status) | dict(extra)
        up = Sample(
            "llmfleet_target_up",
            "gauge",
            "llmfleet_target_up",
            tuple(labels.items()),
            0.0 if text is None else 1.0,
        )
        if target.is_gateway:
            return [up, *gateway_samples(text or "", status.environment, self.service_labels)]
        engine = normalise_metrics(status.engine, text, labels) if text else []
        return [up, *replica_samples(status, now=self._wall(), extra=extra), *engine]

    async def _fetch(self, url: str, api_key: str | None) -> str | None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        try:
            async with self._session.get(url, timeout=self._timeout, headers=headers) as response:
                return await response.text() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, OSError, UnicodeDecodeError):
            return None
