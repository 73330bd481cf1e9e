"""The gateway's Prometheus series, in a registry the app owns (no globals).

Counters and histograms are updated on the request path through
``ServiceSeries``, which resolves each labelled child once per service (or per
replica, status) and keeps it. The series updated on every request are the
lock-free ones of ``series`` (``prometheus_client``'s lock and checks cost
about 6 us a request); the ones updated only on failures are
``prometheus_client``'s own. Queue depth and in-flight gauges are read from the
router only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmfleet.gateway.series import (
    CounterChild,
    HistogramChild,
    LabelledCounter,
    LabelledHistogram,
)
from llmfleet.spec.agents import agent_of_key

if TYPE_CHECKING:
    from llmfleet.gateway.admission import Router

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


class GatewayMetrics:
    """Every series of one gateway, prefixed ``llmfleet_gateway_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, p = self.registry, "llmfleet_gateway_"
        # updated on every request: the lock-free families of ``series``
        self.requests = LabelledCounter(
            p + "requests", "Requests by final status", ["service", "endpoint", "status"], r
        )
        self.ttft = LabelledHistogram(
            p + "time_to_first_token_seconds",
            "Time to first token",
            ["service"],
            r,
            buckets=LATENCY_BUCKETS,
        )
        self.itl = LabelledHistogram(
            p + "inter_token_latency_seconds",
            "Time between tokens",
            ["service"],
            r,
            buckets=FAST_BUCKETS,
        )
        self.e2e = LabelledHistogram(
            p + "request_duration_seconds",
            "End-to-end latency",
            ["service"],
            r,
            buckets=LATENCY_BUCKETS,
        )
        self.overhead = LabelledHistogram(
            p + "overhead_seconds",
            "Time spent in the gateway itself",
            ["service"],
            r,
            buckets=FAST_BUCKETS,
        )
        self.prompt_tokens = LabelledCounter(p + "prompt_tokens", "Prompt tokens", ["service"], r)
        self.prompt_tokens_cached = LabelledCounter(
            p + "prompt_tokens_cached",
            "Prompt tokens the engine found in its cache (over prompt_tokens: the cache-hit "
            "ratio, which says whether prefix routing works)",
            ["service"],
            r,
        )
        self.completion_tokens = LabelledCounter(
            p + "completion_tokens", "Completion tokens", ["service"], r
        )
        # updated only when something fails: prometheus_client's own
        self.retries = Counter(
            p + "retries", "Attempts retried before the first token", ["service"], registry=r
        )
        self.resumed = Counter(
            p + "resumed_streams", "Answers continued on a replica", ["service"], registry=r
        )
        self.upstream = LabelledCounter(
            p + "upstream_requests", "Attempts sent to each replica", ["service", "replica"], r
        )
        self.ejections = Counter(
            p + "ejections", "Replicas ejected after failures", ["service", "replica"], registry=r
        )
        self.agent_tokens = LabelledCounter(
            p + "agent_tokens",
            "Tokens of the models' calls made with an agent's key: each agent's use",
            ["agent", "service", "kind"],
            r,
        )
        self._series: dict[str, ServiceSeries] = {}
        self._expected_replicas: set[tuple[str, str]] = set()

    def of(self, service: str) -> ServiceSeries:
        """The series of one service, children resolved once."""
        series = self._series.get(service)
        if series is None:
            series = self._series[service] = ServiceSeries(self, service)
        return series

    def token_timer(self, service: str) -> TokenTimer:
        return self.of(service).timer

    def watch_router(self, router: Router) -> None:
        self.registry.register(_RouterCollector(lambda: router, self.expect))

    def expect(self, services: Iterable[str], replicas: Iterable[tuple[str, str]]) -> None:
        """Export 0 for the failure counters (and cached prompt tokens) of every service
        and (service, replica) known.

        A counter that first appears at 1 is lost to ``rate()`` and ``increase()``, so
        the first retry, resumed stream or ejection would never show on a dashboard.
        Replicas that left are dropped, so replacements do not pile up series.
        """
        for service in services:
            self.retries.labels(service)
            self.resumed.labels(service)
            self.prompt_tokens_cached.labels(service)  # the first cache hit counts too
        current = set(replicas)
        for pair in self._expected_replicas - current:
            self.ejections.remove(*pair)
        for pair in current - self._expected_replicas:
            self.ejections.labels(*pair)
        self._expected_replicas = current

    def observe_usage(self, service: str, usage: dict[str, object] | None) -> None:
        self.of(service).observe_usage(usage)

    def count_agent_usage(self, key_name: str, service: str, usage: dict[str, object]) -> None:
        """Tokens of a call made with an agent's key, as that agent's use of ``service``."""
        agent = agent_of_key(key_name)
        if agent is None:
            return
        for kind in ("prompt", "completion"):
            tokens = usage.get(f"{kind}_tokens")
            if isinstance(tokens, int) and tokens > 0:
                self.agent_tokens.labels(agent, service, kind).inc(tokens)


class ServiceSeries:
    """Children of every series for one service; the hot path uses only these."""

    def __init__(self, metrics: GatewayMetrics, service: str) -> None:
        self.metrics = metrics
        self.service = service
        self.timer = TokenTimer(metrics.ttft.labels(service), metrics.itl.labels(service))
        self.e2e = metrics.e2e.labels(service)
        self.overhead = metrics.overhead.labels(service)
        self.prompt_tokens = metrics.prompt_tokens.labels(service)
        self.prompt_tokens_cached = metrics.prompt_tokens_cached.labels(service)
        self.completion_tokens = metrics.completion_tokens.labels(service)
        self._requests: dict[tuple[str, str], CounterChild] = {}
        self._upstream: dict[str, CounterChild] = {}

    def count_request(self, endpoint: str, status: str) -> None:
        child = self._requests.get((endpoint, status))
        if child is None:
            child = self.metrics.requests.labels(self.service, endpoint, status)
            self._requests[endpoint, status] = child
        child.inc()

    def count_upstream(self, replica: str) -> None:
        child = self._upstream.get(replica)
        if child is None:
            child = self._upstream[replica] = self.metrics.upstream.labels(self.service, replica)
        child.inc()

    def observe_usage(self, usage: dict[str, object] | None) -> None:
        if not usage:
            return
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.prompt_tokens.inc(prompt)
        if isinstance(completion, int):
            self.completion_tokens.inc(completion)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            cached = details.get("cached_tokens")
            if isinstance(cached, int) and cached > 0:
                self.prompt_tokens_cached.inc(cached)


class TokenTimer:
    """TTFT and inter-token latency of one service, children resolved once."""

    def __init__(self, ttft: HistogramChild, itl: HistogramChild) -> None:
        self.ttft = ttft
        self.itl = itl

    def observe(self, now: float, last: float | None, start: float) -> float:
        """One chunk sent to the client at ``now``: the first is TTFT, later ones ITL."""
        if last is None:
            self.ttft.observe(now - start)
        else:
            self.itl.observe(now - last)
        return now


class _RouterCollector(Collector):
    def __init__(
        self,
        router: Callable[[], Router],
        expect: Callable[[Iterable[str], Iterable[tuple[str, str]]], None],
    ) -> None:
        self.router = router
        self.expect = expect

    def collect(self) -> Iterator[Metric]:
        router = self.router()
        # the zeros show from the next scrape on (this one has read the counters already)
        self.expect(
            router.snapshot.services,
            [(r.service, r.replica_id) for r in router.snapshot.replicas],
        )
        depth = GaugeMetricFamily(
            "llmfleet_gateway_queue_depth", "Requests waiting for a slot", labels=["service"]
        )
        for service in router.snapshot.services:
            depth.add_metric([service], router.queue_depth(service))
        in_flight = GaugeMetricFamily(
            "llmfleet_gateway_in_flight", "Requests in flight", labels=["service", "replica"]
        )
        for replica in router.snapshot.replicas:
            in_flight.add_metric(
                [replica.service, replica.replica_id], router.in_flight.get(replica.replica_id, 0)
            )
        yield depth
        yield in_flight
