"""``plan`` prints changed values as fleet.yaml spells them, never as Python reprs."""

from __future__ import annotations

from tests.fixtures.fleet import Fleet

SPEC = """services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0", args: [--tps, "500"]}
    replicas: 1
    alerts:
      - {kind: replica_down, for: 1m}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""


def test_plan_shows_changed_fields_in_spec_spelling(fleet: Fleet) -> None:
    """An alert's ``for`` (``for_`` inside), a missing value (``None``) and quoted strings
    read as YAML: ``for: 5m``, ``null``, ``[--tps, "1000"]``."""
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    fleet.write(SPEC.replace("for: 1m}", "for: 5m, threshold: 2}").replace('"500"', '"1000"'))
    out = fleet.run("plan").stdout
    assert "for_" not in out and "None" not in out and "'" not in out, out
    assert "for: 5m" in out
    assert "threshold: null" in out and "threshold: 2" in out
    assert 'engine.args: [--tps, "500"] -> [--tps, "1000"]' in out
