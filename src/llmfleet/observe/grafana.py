"""A Grafana dashboard over the fleet endpoint's series; pure.

The panels (``observe.panels``) are laid out in rows, three to a row, under
four variables: the data source, ``instance`` (which machines' fleet
endpoints), ``environment`` and ``service``.
"""

from __future__ import annotations

from typing import Any

from llmfleet.observe.panels import PANELS, Panel

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ENVIRONMENTS = 'label_values(llmfleet_replica_state{instance=~"$instance"}, environment)'
SERVICES = (
    'label_values(llmfleet_replica_state{environment=~"$environment",instance=~"$instance"}, '
    "service)"
)
INSTANCES = "label_values(llmfleet_scrape_duration_seconds, instance)"
"""Every fleet endpoint (one a machine) exports this one series, whatever runs there."""


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


def _panel(panel_id: int, panel: Panel, pos: dict[str, int]) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "gridPos": pos,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": query.expr,
                "legendFormat": query.legend,
                "datasource": DATASOURCE,
            }
            for i, query in enumerate(panel.queries)
        ],
    }


def grafana_dashboard(*, title: str = "llmfleet", uid: str = "llmfleet") -> dict[str, Any]:
    """The dashboard JSON model (import it, or provision it from a file)."""
    panels: list[dict[str, Any]] = []
    row, y, x = "", 0, 0
    for panel in PANELS:
        if panel.section != row:
            y += 8 if x else 0
            x, row = 0, panel.section
            panels.append(
                {
                    "id": len(panels) + 1,
                    "type": "row",
                    "title": panel.section,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
        pos = {"h": 8, "w": 8, "x": x, "y": y}
        panels.append(_panel(len(panels) + 1, panel, pos))
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
                _variable("instance", INSTANCES),
                _variable("environment", ENVIRONMENTS),
                _variable("service", SERVICES),
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }
