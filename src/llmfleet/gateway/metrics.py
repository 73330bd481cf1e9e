"""The gateway's Prometheus series, in a registry the app owns (no globals).

Counters and histograms are updated on the request path through
``ServiceSeries``, which resolves each labelled child once per service (or per
replica, status) and keeps it: ``labels()`` takes a lock and builds tuples, too
much to pay several times per request. Queue depth and in-flight gauges are
read from the router only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from llmfleet.gateway.admission import Router

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


class GatewayMetrics:
    """Every series of one gateway, prefixed ``llmfleet_gateway_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, p = self.registry, "llmfleet_gateway_"
        self.requests = Counter(p + "requests", "Requests by final status",
                                ["service", "endpoint", "status"], registry=r)
        self.ttft = Histogram(p + "time_to_first_token_seconds", "Time to first token",
                              ["service"], buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram(p + "inter_token_latency_seconds", "Time between tokens",
                             ["service"], buckets=FAST_BUCKETS, registry=r)
        self.e2e = Histogram(p + "request_duration_seconds", "End-to-end latency",
                             ["service"], buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram(p + "overhead_seconds", "Time spent in the gateway itself",
                                  ["service"], buckets=FAST_BUCKETS, registry=r)
        self.prompt_tokens = Counter(p + "prompt_tokens", "Prompt tokens", ["service"], registry=r)
        self.completion_tokens = Counter(p + "completion_tokens", "Completion tokens",
                                         ["service"], registry=r)
        self.retries = Counter(p + "retries", "Attempts retried before the first token",
                               ["service"], registry=r)
        self.resumed = Counter(p + "resumed_streams", "Answers continued on a replica",
                               ["service"], registry=r)
        self._series: dict[str, ServiceSeries] = {}
        self.upstream = Counter(p + "upstream_requests", "Attempts sent to each replica",
                                ["service", "replica"], registry=r)
        self.ejections = Counter(p + "ejections", "Replicas ejected after failures",
                                 ["service", "replica"], registry=r)

    def of(self, service: str) -> ServiceSeries:
        """The series of one service, children resolved once."""
        series = self._series.get(service)
        if series is None:
            series = self._series[service] = ServiceSeries(self, service)
        return series

    def token_timer(self, service: str) -> TokenTimer:
        return self.of(service).timer

    def watch_router(self, router: Router) -> None:
        self.registry.register(_RouterCollector(lambda: router))

    def observe_usage(self, service: str, usage: dict[str, object] | None) -> None:
        self.of(service).observe_usage(usage)


class ServiceSeries:
    """Children of every series for one service; the hot path uses only these."""

    def __init__(self, metrics: GatewayMetrics, service: str) -> None:
        self.metrics = metrics
        self.service = service
        self.timer = TokenTimer(metrics.ttft.labels(service), metrics.itl.labels(service))
        self.e2e = metrics.e2e.labels(service)
        self.overhead = metrics.overhead.labels(service)
        self.prompt_tokens = metrics.prompt_tokens.labels(service)
        self.completion_tokens = metrics.completion_tokens.labels(service)
        self._requests: dict[tuple[str, str], Counter] = {}
        self._upstream: dict[str, Counter] = {}

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


class TokenTimer:
    """TTFT and inter-token latency of one service, children resolved once."""

    def __init__(self, ttft: Histogram, itl: Histogram) -> None:
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
    def __init__(self, router: Callable[[], Router]) -> None:
        self.router = router

    def collect(self) -> Iterator[Metric]:
        router = self.router()
        depth = GaugeMetricFamily("llmfleet_gateway_queue_depth", "Requests waiting for a slot",
                                  labels=["service"])
        for service in router.snapshot.services:
            depth.add_metric([service], router.queue_depth(service))
        in_flight = GaugeMetricFamily("llmfleet_gateway_in_flight", "Requests in flight",
                                      labels=["service", "replica"])
        for replica in router.snapshot.replicas:
            in_flight.add_metric([replica.service, replica.replica_id],
                                 router.in_flight.get(replica.replica_id, 0))
        yield depth
        yield in_flight
