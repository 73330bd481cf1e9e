"""A Grafana dashboard over the fleet endpoint's series; pure.

Panels: traffic, latency, tokens, queue, replica health and GPUs (plus the
machine). Every query reads only ``llmfleet_*`` series that the agent exports;
a test checks each metric name against the exported set.
"""

from __future__ import annotations

from typing import Any

SEL = '{environment=~"$environment",service=~"$service"}'
GW = "llmfleet_gateway_"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERVICES = 'label_values(llmfleet_replica_state{environment=~"$environment"}, service)'


def _p(quantile: float, family: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (service, le) "
        f"(rate({family}_bucket{SEL}[$__rate_interval])))"
    )


PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Traffic",
        "Requests per second",
        "reqps",
        [
            (
                f"sum by (service, status) (rate({GW}requests_total{SEL}[$__rate_interval]))",
                "{{service}} {{status}}",
            )
        ],
    ),
    (
        "Traffic",
        "Error ratio (5xx)",
        "percentunit",
        [
            (
                f'sum by (service) (rate({GW}requests_total{{environment=~"$environment",'
                f'service=~"$service",status=~"5.."}}[$__rate_interval])) / sum by (service) '
                f"(rate({GW}requests_total{SEL}[$__rate_interval]))",
                "{{service}}",
            )
        ],
    ),
    (
        "Latency",
        "Time to first token",
        "s",
        [
            (_p(0.5, GW + "time_to_first_token_seconds"), "p50 {{service}}"),
            (_p(0.95, GW + "time_to_first_token_seconds"), "p95 {{service}}"),
        ],
    ),
    (
        "Latency",
        "Inter-token latency",
        "s",
        [(_p(0.95, GW + "inter_token_latency_seconds"), "p95 {{service}}")],
    ),
    (
        "Latency",
        "Request duration and gateway overhead",
        "s",
        [
            (_p(0.95, GW + "request_duration_seconds"), "p95 {{service}}"),
            (_p(0.95, GW + "overhead_seconds"), "overhead p95 {{service}}"),
        ],
    ),
    (
        "Tokens",
        "Tokens per second",
        "short",
        [
            (
                f"sum by (service) (rate({GW}completion_tokens_total{SEL}[$__rate_interval]))",
                "completion {{service}}",
            ),
            (
                f"sum by (service) (rate({GW}prompt_tokens_total{SEL}[$__rate_interval]))",
                "prompt {{service}}",
            ),
            (
                f"sum by (service) (rate(llmfleet_generation_tokens_total{SEL}[$__rate_interval]))",
                "engine generated {{service}}",
            ),
        ],
    ),
    (
        "Queue",
        "Queue depth",
        "short",
        [
            (f"sum by (service) ({GW}queue_depth{SEL})", "gateway {{service}}"),
            (f"sum by (service) (llmfleet_requests_waiting{SEL})", "engines {{service}}"),
        ],
    ),
    (
        "Queue",
        "In flight",
        "short",
        [
            (f"sum by (service) ({GW}in_flight{SEL})", "gateway {{service}}"),
            (f"sum by (service) (llmfleet_requests_running{SEL})", "engines {{service}}"),
        ],
    ),
    (
        "Queue",
        "KV cache usage",
        "percentunit",
        [(f"max by (replica) (llmfleet_kv_cache_usage_ratio{SEL})", "{{replica}}")],
    ),
    (
        "Replica health",
        "Replicas by state",
        "short",
        [(f"sum by (service, state) (llmfleet_replica_state{SEL})", "{{service}} {{state}}")],
    ),
    (
        "Replica health",
        "Restarts",
        "short",
        [(f"sum by (replica) (increase(llmfleet_replica_restarts_total{SEL}[1h]))", "{{replica}}")],
    ),
    (
        "Replica health",
        "Firing alerts",
        "short",
        [
            (
                'sum by (alertname, severity) (llmfleet_alerts{alertstate="firing"})',
                "{{alertname}} {{severity}}",
            )
        ],
    ),
    (
        "Costs",
        "Cost per hour of what runs",
        "currencyUSD",
        [(f"sum by (service) (llmfleet_cost_usd_per_hour{SEL})", "{{service}}")],
    ),
    (
        "Costs",
        "Cost per million tokens (live, since the replicas started)",
        "currencyUSD",
        [
            (
                f"llmfleet_cost_usd_per_million_tokens{SEL}",
                "{{service}} {{direction}}",
            )
        ],
    ),
    ("GPUs", "GPU temperature", "celsius", [("llmfleet_gpu_temperature_celsius", "GPU {{gpu}}")]),
    ("GPUs", "GPU power", "watt", [("llmfleet_gpu_power_watts", "GPU {{gpu}}")]),
    (
        "GPUs",
        "GPU memory used",
        "bytes",
        [
            ("llmfleet_gpu_memory_used_bytes", "GPU {{gpu}}"),
            ("llmfleet_gpu_memory_total_bytes", "total {{gpu}}"),
        ],
    ),
    ("GPUs", "GPU utilisation", "percentunit", [("llmfleet_gpu_utilization_ratio", "GPU {{gpu}}")]),
    (
        "GPUs",
        "GPU health and errors",
        "short",
        [
            ("llmfleet_gpu_healthy", "healthy {{gpu}}"),
            ("increase(llmfleet_gpu_xid_errors_total[1h])", "XID {{gpu}}"),
            ("increase(llmfleet_gpu_ecc_errors_uncorrected_total[1h])", "ECC {{gpu}}"),
            ("llmfleet_gpu_throttled == 1", "throttled {{gpu}} {{reason}}"),
        ],
    ),
    (
        "Machine",
        "CPU and memory",
        "percentunit",
        [
            ("llmfleet_machine_cpu_usage_ratio", "CPU"),
            ("llmfleet_machine_memory_used_bytes / llmfleet_machine_memory_total_bytes", "memory"),
            ("llmfleet_machine_disk_used_bytes / llmfleet_machine_disk_total_bytes", "disk"),
        ],
    ),
]


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }


def _panel(
    panel_id: int, title: str, unit: str, targets: list[tuple[str, str]], pos: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "gridPos": pos,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": expr,
                "legendFormat": legend,
                "datasource": DATASOURCE,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def grafana_dashboard(*, title: str = "llmfleet", uid: str = "llmfleet") -> dict[str, Any]:
    """The dashboard JSON model (import it, or provision it from a file)."""
    panels: list[dict[str, Any]] = []
    row, y, x = "", 0, 0
    for section, name, unit, targets in PANELS:
        if section != row:
            y += 8 if x else 0
            x, row = 0, section
            panels.append(
                {
                    "id": len(panels) + 1,
                    "type": "row",
                    "title": section,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
        pos = {"h": 8, "w": 8, "x": x, "y": y}
        panels.append(_panel(len(panels) + 1, name, unit, targets, pos))
        x = (x + 8) % 24
        y += 8 if x == 0 else 0
    datasource = {
        "name": "datasource",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    return {
        "uid": uid,
        "title": title,
        "tags": ["llmfleet"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                datasource,
                _variable("environment", "label_values(llmfleet_replica_state, environment)"),
                _variable("service", SERVICES),
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }
