"""What the local agent runs for observability: scrape, evaluate alerts, notify, serve.

``Observer`` is the agent's one object for it. The agent tells it the spec's
settings (``configure``, on every apply), pokes it when a replica changes state
(``poke``: a killed replica is seen at once, not at the next period), and asks
it for the current alerts. It serves the machine's one Prometheus endpoint on
``observability.metrics_host:metrics_port`` (the agent's own socket is a unix
socket, which Prometheus cannot scrape).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from llmfleet.observe import signals
from llmfleet.observe.alerts import Alert, AlertEvaluator, ServiceRules, active_conditions
from llmfleet.observe.costs import EnvironmentPrices, cost_samples, environment_prices
from llmfleet.observe.exposition import Labels, Sample
from llmfleet.observe.fleet import FleetScraper, Target, allowed_labels
from llmfleet.observe.gpu import GpuReport, NvmlReader, gpu_samples, unhealthy_gpus
from llmfleet.observe.machine import MachineSampler
from llmfleet.observe.notify import Notifier
from llmfleet.spec.observability import AlertKind, AlertRule, Observability, Severity, Slo

log = logging.getLogger("llmfleet.observe")
WINDOW_S = 60.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUILTIN_GPU_RULE = ServiceRules(
    "machine",
    "gpus",
    (
        AlertRule.model_validate(
            {"kind": AlertKind.GPU_UNHEALTHY, "for": "0s", "severity": Severity.CRITICAL}
        ),
    ),
)


def service_rules(environment: str, services: dict[str, Any]) -> list[ServiceRules]:
    """Rules of an environment from the services config the agent holds (JSON)."""
    out = []
    for name, body in sorted(services.items()):
        rules = tuple(AlertRule.model_validate(r) for r in body.get("alerts") or ())
        if rules:
            slo = Slo.model_validate(body.get("slo") or {})
            out.append(ServiceRules(environment, name, rules, slo))
    return out


class Observer:
    """Scraper, alert loop, GPU watch and the metrics listener of one agent."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        targets: Callable[[], Sequence[Target]],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        on_gpu_fault: Callable[[dict[str, str]], None] = lambda _faults: None,
        gpu_reader: NvmlReader | None = None,
    ) -> None:
        self.settings = Observability(metrics_port=None)
        self.rules: dict[str, list[ServiceRules]] = {}
        self.prices: dict[str, EnvironmentPrices] = {}
        self.labels: dict[str, dict[str, dict[str, str]]] = {}
        """environment -> service -> the spec's labels, as the last apply pushed them"""
        self._targets = targets
        self._clock = clock
        self._wall = wall_clock
        self._on_gpu_fault = on_gpu_fault
        self.gpu = gpu_reader or NvmlReader()
        self.gpu_report = GpuReport(available=False, reason="not read yet")
        self._machine = MachineSampler()
        self.evaluator = AlertEvaluator()
        self.notifier = Notifier(session, external_url="http://127.0.0.1")
        self.scraper = FleetScraper(
            session=session,
            targets=targets,
            clock=clock,
            wall_clock=wall_clock,
            extra=[self._own_samples],
            derived=[lambda samples: cost_samples(samples, self.prices)],
            service_labels=self.metric_labels,
        )
        self._history: collections.deque[tuple[float, list[Sample]]] = collections.deque()
        self._poked = asyncio.Event()
        self._site: web.AppRunner | None = None
        self._port: tuple[str, int] | None = None
        self.metrics_error = ""
        self._task: asyncio.Task[None] | None = None
        self._last_gpu_read = -1e9

    async def configure(
        self,
        environment: str,
        services: dict[str, Any],
        observability: dict[str, Any] | None,
        costs: dict[str, Any] | None = None,
    ) -> None:
        """New settings from an apply; (re)binds the metrics listener if its address moved."""
        if observability is not None:
            self.settings = Observability.model_validate(observability)
        self.rules[environment] = service_rules(environment, services)
        self.labels[environment] = {
            name: dict(body.get("labels") or {}) for name, body in services.items()
        }
        prices = environment_prices(costs, services)
        if prices is None:
            self.prices.pop(environment, None)
        else:
            self.prices[environment] = prices
        self.scraper.cache_s = self.settings.scrape_cache_s
        await self._bind()

    def metric_labels(self, environment: str, service: str) -> Labels:
        """The allow-listed labels of a service (read from the last apply, so an in-place
        label change shows in the metrics at once)."""
        labels = self.labels.get(environment, {}).get(service, {})
        return allowed_labels(labels, self.settings.metric_labels)

    def forget(self, environment: str) -> None:
        self.rules.pop(environment, None)
        self.labels.pop(environment, None)
        self.prices.pop(environment, None)

    def poke(self) -> None:
        """A replica changed state: evaluate soon."""
        self._poked.set()

    async def start(self, environments: dict[str, dict[str, Any]]) -> None:
        """Configure from the environments a restarted agent restored, then run the loop."""
        for name, config in environments.items():
            await self.configure(
                name, config.get("services", {}), config.get("observability"), config.get("costs")
            )
        self._task = asyncio.create_task(self._loop(), name="llmfleet-observe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._site is not None:
            await self._site.cleanup()
        self.gpu.close()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.settings.evaluate_every_s)
            self._poked.clear()
            try:
                await self.evaluate()
            except Exception:  # the loop must outlive a bad evaluation; say what broke
                log.exception("alert evaluation failed")

    async def evaluate(self) -> list[Alert]:
        """One round: read GPUs, scrape, step the alerts, notify. Returns the transitions."""
        self._read_gpus()
        samples = await self.scraper.samples()
        now = self._clock()
        window = self._window(now, samples)
        replicas = [t.status for t in self._targets() if not t.is_gateway]
        faults = unhealthy_gpus(self.gpu_report, self.settings.gpu)
        groups = [g for rules in self.rules.values() for g in rules]
        if faults and not any(r.kind is AlertKind.GPU_UNHEALTHY for g in groups for r in g.rules):
            groups.append(BUILTIN_GPU_RULE)  # a faulty GPU always alerts, declared or not
        conditions = active_conditions(
            groups, replicas=replicas, window=window, unhealthy_gpus=faults
        )
        changed = self.evaluator.step(conditions, now=self._wall())
        if changed:
            await self.notifier.notify(changed, self.settings.webhooks)
        return changed

    def _window(self, now: float, samples: list[Sample]) -> signals.Window:
        if not self._history or self._history[-1][1] is not samples:
            self._history.append((now, samples))
        while len(self._history) > 2 and now - self._history[1][0] >= WINDOW_S:
            self._history.popleft()
        return signals.Window(old=self._history[0][1], new=samples)

    def _read_gpus(self) -> None:
        now = self._clock()
        if now - self._last_gpu_read < self.settings.gpu.poll_s:
            return
        self._last_gpu_read = now
        self.gpu_report = self.gpu.read()
        faults = unhealthy_gpus(self.gpu_report, self.settings.gpu)
        if faults:
            log.error("unhealthy GPUs: %s", faults)
        self._on_gpu_fault(faults)

    def _own_samples(self) -> list[Sample]:
        out = gpu_samples(self.gpu_report, self.settings.gpu) + self._machine.samples()
        for alert in self.evaluator.current():
            labels = (*alert.labels, ("alertstate", alert.state))
            out.append(Sample("llmfleet_alerts", "gauge", "llmfleet_alerts", labels, 1.0))
        return out

    def alerts_json(self) -> dict[str, Any]:
        return {
            "alerts": [a.to_json() for a in self.evaluator.current()],
            "resolved": [a.to_json() for a in reversed(self.evaluator.resolved)],
            "gpu": {
                "available": self.gpu_report.available,
                "reason": self.gpu_report.reason,
                "warning": self.gpu_report.warning,
            },
            "metrics": self.metrics_url,
            "metrics_error": self.metrics_error,
        }

    @property
    def metrics_url(self) -> str | None:
        return f"http://{self._port[0]}:{self._port[1]}/metrics" if self._port else None

    async def _bind(self) -> None:
        wanted = self.settings.metrics_port
        address = (self.settings.metrics_host, wanted) if wanted else None
        if address == self._port:
            return
        if self._site is not None:
            await self._site.cleanup()
            self._site, self._port = None, None
        if address is None:
            return
        runner = web.AppRunner(self._metrics_app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, address[0], address[1]).start()
        except OSError as exc:
            await runner.cleanup()
            self.metrics_error = (
                f"the metrics endpoint cannot listen on {address[0]}:{address[1]} "
                f"(observability.metrics_port): {exc.strerror or exc}; choose a free port "
                "there, or null to turn the endpoint off"
            )
            log.error("%s", self.metrics_error)
            return
        self._site, self._port, self.metrics_error = runner, address, ""
        self.notifier.external_url = f"http://{address[0]}:{address[1]}"

    def _metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.handle_metrics)
        return app

    async def handle_metrics(self, _request: web.Request) -> web.Response:
        body = await self.scraper.render()
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})
