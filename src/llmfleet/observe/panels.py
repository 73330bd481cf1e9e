"""The panels of the Grafana dashboard: what each one asks Prometheus; pure data.

Every query reads only ``llmfleet_*`` series of the agent's fleet endpoint, and
every one is filtered by the dashboard's variables: ``$environment`` and
``$service`` for the fleet, ``$instance`` (the Prometheus target, one fleet
endpoint per machine) everywhere, so that the GPUs and machines of several hosts
never add up in one line. A ratio whose numerator may have no series yet (no
5xx) falls back to 0 with ``or ... * 0``: "No data" would hide a healthy service.
``tests/observe/test_dashboard_prometheus.py`` runs each query in a real
Prometheus scraping a fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

SEL = '{environment=~"$environment",service=~"$service",instance=~"$instance"}'
HOST = '{instance=~"$instance"}'
GW = "llmfleet_gateway_"
RATE = "[$__rate_interval]"


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    section: str
    title: str
    unit: str
    queries: tuple[Query, ...]


def selector(*extra: str) -> str:
    """``SEL`` with more matchers, e.g. ``selector('status=~"5.."')``."""
    return SEL[:-1] + "".join(f",{matcher}" for matcher in extra) + "}"


def per_service_rate(family: str, sel: str = SEL) -> str:
    return f"sum by (service) (rate({family}{sel}{RATE}))"


def quantile(q: float, family: str) -> str:
    return f"histogram_quantile({q}, sum by (service, le) (rate({family}_bucket{SEL}{RATE})))"


def zero_if_absent(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, 0 (not "No data") while the numerator has no series."""
    return f"({numerator} or {denominator} * 0) / {denominator}"


def _panel(section: str, title: str, unit: str, *queries: tuple[str, str]) -> Panel:
    return Panel(section, title, unit, tuple(Query(expr, legend) for expr, legend in queries))


def _host_ratio(part: str) -> str:
    return f"llmfleet_machine_{part}_used_bytes{HOST} / llmfleet_machine_{part}_total_bytes{HOST}"


_REQUESTS = GW + "requests_total"
_ERRORS = per_service_rate(_REQUESTS, selector('status=~"5.."'))
_TTFT = GW + "time_to_first_token_seconds"
_LLAMACPP_CACHED = per_service_rate("llmfleet_prompt_tokens_cached_total")
_LLAMACPP_PROMPT = per_service_rate("llmfleet_prompt_tokens_total", selector('engine="llamacpp"'))
_VLLM_HITS = per_service_rate("llmfleet_prefix_cache_hits_total")
_VLLM_QUERIES = per_service_rate("llmfleet_prefix_cache_queries_total")
_RESTARTS = f"sum by (replica) (increase(llmfleet_replica_restarts_total{SEL}[1h]))"
_FIRING = 'llmfleet_alerts{alertstate="firing",instance=~"$instance"}'
_INGEST = '{environment=~"$environment",instance=~"$instance"}'  # per pipeline, not service

PANELS: tuple[Panel, ...] = (
    _panel(
        "Traffic",
        "Requests per second",
        "reqps",
        (f"sum by (service, status) (rate({_REQUESTS}{SEL}{RATE}))", "{{service}} {{status}}"),
    ),
    _panel(
        "Traffic",
        "Error ratio (5xx)",
        "percentunit",
        (zero_if_absent(_ERRORS, per_service_rate(_REQUESTS)), "{{service}}"),
    ),
    _panel(
        "Latency",
        "Time to first token",
        "s",
        (quantile(0.5, _TTFT), "p50 {{service}}"),
        (quantile(0.95, _TTFT), "p95 {{service}}"),
    ),
    _panel(
        "Latency",
        "Inter-token latency",
        "s",
        (quantile(0.95, GW + "inter_token_latency_seconds"), "p95 {{service}}"),
    ),
    _panel(
        "Latency",
        "Request duration and gateway overhead",
        "s",
        (quantile(0.95, GW + "request_duration_seconds"), "p95 {{service}}"),
        (quantile(0.95, GW + "overhead_seconds"), "overhead p95 {{service}}"),
    ),
    _panel(
        "Failover",
        "Retries before the first token",
        "ops",
        (per_service_rate(GW + "retries_total"), "{{service}}"),
    ),
    _panel(
        "Failover",
        "Streams resumed on another replica",
        "ops",
        (per_service_rate(GW + "resumed_streams_total"), "{{service}}"),
    ),
    _panel(
        "Failover",
        "Replica ejections",
        "ops",
        (f"sum by (service, replica) (rate({GW}ejections_total{SEL}{RATE}))", "{{replica}}"),
    ),
    _panel(
        "Tokens",
        "Tokens per second",
        "short",
        (per_service_rate(GW + "completion_tokens_total"), "completion {{service}}"),
        (per_service_rate(GW + "prompt_tokens_total"), "prompt {{service}}"),
        (per_service_rate("llmfleet_generation_tokens_total"), "engine generated {{service}}"),
    ),
    _panel(
        "Queue",
        "Queue depth",
        "short",
        (f"sum by (service) ({GW}queue_depth{SEL})", "gateway {{service}}"),
        (f"sum by (service) (llmfleet_requests_waiting{SEL})", "engines {{service}}"),
    ),
    _panel(
        "Queue",
        "In flight",
        "short",
        (f"sum by (service) ({GW}in_flight{SEL})", "gateway {{service}}"),
        (f"sum by (service) (llmfleet_requests_running{SEL})", "engines {{service}}"),
    ),
    _panel(
        "KV cache",
        "KV cache usage",
        "percentunit",
        (f"max by (service, replica) (llmfleet_kv_cache_usage_ratio{SEL})", "{{replica}}"),
    ),
    _panel(
        "KV cache",
        "Engine prefix cache reuse",
        "percentunit",
        (f"{_VLLM_HITS} / {_VLLM_QUERIES}", "{{service}} (vLLM)"),
        # llama-server's prompt token counter leaves the cached tokens out
        (
            f"{_LLAMACPP_CACHED} / ({_LLAMACPP_CACHED} + {_LLAMACPP_PROMPT})",
            "{{service}} (llama.cpp)",
        ),
    ),
    _panel(
        "KV cache",
        "Cached prompt tokens (gateway): does routing find warm caches",
        "percentunit",
        (
            zero_if_absent(
                per_service_rate(GW + "prompt_tokens_cached_total"),
                per_service_rate(GW + "prompt_tokens_total"),
            ),
            "{{service}}",
        ),
    ),
    _panel(
        "Replica health",
        "Replicas by state",
        "short",
        (f"sum by (service, state) (llmfleet_replica_state{SEL})", "{{service}} {{state}}"),
    ),
    _panel("Replica health", "Restarts", "short", (_RESTARTS, "{{replica}}")),
    _panel(
        "Replica health",
        "Firing alerts",
        "short",
        (f"sum by (alertname, severity) ({_FIRING})", "{{alertname}} {{severity}}"),
    ),
    _panel(
        "Costs",
        "Cost per hour of what runs",
        "currencyUSD",
        (f"sum by (service) (llmfleet_cost_usd_per_hour{SEL})", "{{service}}"),
    ),
    _panel(
        "Costs",
        "Cost per million tokens (live, since the replicas started)",
        "currencyUSD",
        (f"llmfleet_cost_usd_per_million_tokens{SEL}", "{{service}} {{direction}}"),
    ),
    _panel(
        "GPUs",
        "GPU temperature",
        "celsius",
        (f"llmfleet_gpu_temperature_celsius{HOST}", "{{instance}} GPU {{gpu}}"),
    ),
    _panel(
        "GPUs", "GPU power", "watt", (f"llmfleet_gpu_power_watts{HOST}", "{{instance}} GPU {{gpu}}")
    ),
    _panel(
        "GPUs",
        "GPU memory used",
        "bytes",
        (f"llmfleet_gpu_memory_used_bytes{HOST}", "{{instance}} GPU {{gpu}}"),
        (f"llmfleet_gpu_memory_total_bytes{HOST}", "{{instance}} total {{gpu}}"),
    ),
    _panel(
        "GPUs",
        "GPU utilisation",
        "percentunit",
        (f"llmfleet_gpu_utilization_ratio{HOST}", "{{instance}} GPU {{gpu}}"),
    ),
    _panel(
        "GPUs",
        "GPU health and errors",
        "short",
        (f"llmfleet_gpu_healthy{HOST}", "{{instance}} healthy {{gpu}}"),
        (f"increase(llmfleet_gpu_xid_errors_total{HOST}[1h])", "{{instance}} XID {{gpu}}"),
        (
            f"increase(llmfleet_gpu_ecc_errors_uncorrected_total{HOST}[1h])",
            "{{instance}} ECC {{gpu}}",
        ),
        (f"llmfleet_gpu_throttled{HOST} == 1", "{{instance}} throttled {{gpu}} {{reason}}"),
    ),
    _panel(
        "Machine",
        "CPU and memory",
        "percentunit",
        (f"llmfleet_machine_cpu_usage_ratio{HOST}", "{{instance}} CPU"),
        (_host_ratio("memory"), "{{instance}} memory"),
        (_host_ratio("disk"), "{{instance}} disk"),
    ),
    _panel(
        "Ingestion",
        "Documents and chunks indexed",
        "short",
        (f"llmfleet_ingest_documents{_INGEST}", "{{pipeline}} documents"),
        (f"llmfleet_ingest_chunks{_INGEST}", "{{pipeline}} chunks"),
    ),
    _panel(
        "Ingestion",
        "Skipped documents and lag",
        "short",
        (f"llmfleet_ingest_failures{_INGEST}", "{{pipeline}} skipped"),
        (f"time() - llmfleet_ingest_last_run_timestamp_seconds{_INGEST}", "{{pipeline}} lag (s)"),
    ),
)
"""In dashboard order; a new section starts a new row."""
