"""The observability part of the spec: SLOs, alert rules and fleet-wide settings; pure.

A service carries its own ``slo:`` and ``alerts:`` (so templates and environment
overrides apply to them like to any other field, and changing them is an
in-place update); the fleet carries one ``observability:`` section for the
machine: where the one Prometheus endpoint listens, where traces go, where
alert notifications are sent, and the GPU limits.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmfleet.spec.hosts import check_host

DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)$"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"5m"`` -> 300.0 seconds; pure. The pattern is checked by the spec already."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text.strip())
    if match is None:
        raise ValueError(f"not a duration such as 30s, 5m or 1h: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AlertKind(StrEnum):
    REPLICA_DOWN = "replica_down"
    CRASH_LOOP = "crash_loop"
    ERROR_RATE = "error_rate"
    TTFT_P95 = "ttft_p95"
    ITL_P95 = "itl_p95"
    QUEUE_DEPTH = "queue_depth"
    GPU_UNHEALTHY = "gpu_unhealthy"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Slo(_Frozen):
    """What the service promises; ttft_p95/itl_p95 alerts compare against it."""

    ttft_p95_s: float | None = Field(default=None, gt=0, description="p95 time to first token")
    itl_p95_s: float | None = Field(default=None, gt=0, description="p95 inter-token latency")
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="largest share of 5xx answers"
    )


class AlertRule(_Frozen):
    """One alert of a service: fires once its condition has held for ``for``."""

    kind: AlertKind
    for_: str = Field(default="1m", alias="for", pattern=DURATION_PATTERN)
    severity: Severity = Severity.WARNING
    threshold: float | None = Field(
        default=None,
        ge=0,
        description="error_rate: ratio; queue_depth: requests; ttft/itl: seconds "
        "(default: the service's slo)",
    )
    name: str | None = Field(default=None, description="alert name; default derived from kind")

    @property
    def for_s(self) -> float:
        return parse_duration(self.for_)

    @property
    def alert_name(self) -> str:
        return self.name or "Llmfleet" + "".join(p.title() for p in self.kind.value.split("_"))


class Webhook(_Frozen):
    """An Alertmanager-compatible webhook receiver."""

    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(default=5.0, gt=0)
    attempts: int = Field(default=3, ge=1)


class GpuLimits(_Frozen):
    max_temperature_c: float = Field(default=85.0, gt=0)
    poll_s: float = Field(default=10.0, gt=0)


MAX_METRIC_LABELS = 5
MAX_LABEL_VALUE_CHARS = 64
"""A service has one value per label, so the labels add no series; the caps keep a
mistaken spec (a commit hash, a paragraph) from bloating every series of the fleet."""
OWN_LABELS = frozenset({
    "environment", "service", "replica", "engine", "engine_version", "state", "status",
    "endpoint", "le", "quantile", "gpu", "uuid", "reason", "direction", "alertname",
    "alertstate", "severity", "instance", "job", "model_name",
})  # fmt: skip
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def check_metric_labels(names: tuple[str, ...]) -> tuple[str, ...]:
    """The allow-list of service labels exported as metric labels; pure."""
    if len(names) > MAX_METRIC_LABELS:
        raise ValueError(f"at most {MAX_METRIC_LABELS} labels, got {len(names)}")
    for name in names:
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(
                f"{name!r} is not a Prometheus label name (letters, digits, _; no leading __)"
            )
        if name in OWN_LABELS or name.startswith("engine_"):
            raise ValueError(f"{name!r} is one of llmfleet's own metric labels; pick another")
    if len(set(names)) != len(names):
        raise ValueError("a label is named twice")
    return names


class Observability(_Frozen):
    """Fleet-wide observability settings (``observability:`` at the top of fleet.yaml)."""

    metrics_host: str = Field(default="127.0.0.1", description="the agent's /metrics address")
    metrics_port: int | None = Field(
        default=9464,
        ge=1,
        le=65535,
        description="one Prometheus scrape target for the whole machine; null turns it off",
    )
    scrape_cache_s: float = Field(default=1.0, ge=0, description="how long a scrape is reused")
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector, e.g. http://127.0.0.1:4318"
    )
    trace_sample_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="share of requests traced (a client's sampled traceparent is always kept)",
    )
    request_logs: bool = Field(default=True, description="the gateway logs one line per request")
    log_prompts: bool = Field(default=False, description="request logs include prompts")
    webhooks: tuple[Webhook, ...] = ()
    evaluate_every_s: float = Field(default=5.0, gt=0, description="alert evaluation period")
    gpu: GpuLimits = Field(default_factory=GpuLimits)
    metric_labels: tuple[str, ...] = Field(
        default=(),
        description=f"service labels added to the metrics (at most {MAX_METRIC_LABELS}; "
        f"values cut at {MAX_LABEL_VALUE_CHARS} characters); the others stay out",
    )

    @field_validator("metric_labels")
    @classmethod
    def _few_free_label_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_metric_labels(value)

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError(f"must be an http(s):// URL, got {value!r}")
        return value

    @field_validator("metrics_host")
    @classmethod
    def _host_is_address(cls, value: str) -> str:
        return check_host(value)
