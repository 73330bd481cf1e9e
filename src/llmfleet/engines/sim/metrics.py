"""Prometheus metrics of one sim process, in a registry the app owns.

Gauges read the runtime's counters at scrape time and counters move once per
request, so no metric work happens per token.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SimMetrics:
    """The ``sim:*`` series; ``render`` is the body of ``GET /metrics``."""

    def __init__(self, *, running: Callable[[], int], waiting: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        Gauge(
            "sim:requests_running", "sequences holding a slot", registry=self.registry
        ).set_function(running)
        Gauge(
            "sim:requests_waiting", "requests queued for a slot", registry=self.registry
        ).set_function(waiting)
        self.prompt_tokens = Counter(
            "sim:prompt_tokens", "prompt tokens processed", registry=self.registry
        )
        self.generation_tokens = Counter(
            "sim:generation_tokens", "tokens generated", registry=self.registry
        )
        self.time_to_first_token = Histogram(
            "sim:time_to_first_token_seconds",
            "from request arrival to its first token",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            "sim:requests", "requests by status", ["status"], registry=self.registry
        )
        self._by_status: dict[int, Counter] = {}

    def count_request(self, status: int) -> None:
        child = self._by_status.get(status)
        if child is None:  # labels() takes a lock and builds a key; do it once per status
            child = self._by_status[status] = self._requests.labels(status=str(status))
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
