"""Pure release decisions: promotion checks, rollback targets, upgrade edits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from llmfleet.errors import ReleaseError
from llmfleet.releases.promotion import check_promotion
from llmfleet.releases.rollback import pick_rollback_target
from llmfleet.releases.upgrade import edit_version, newer_versions, version_path
from llmfleet.spec.loading import load_spec_text
from llmfleet.state.records import Event, Revision

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _validation(id_: int, hash_: str, ok: bool) -> Event:
    payload = {
        "services": {"chat": {"candidate_hash": hash_, "passed": ok, "failed_checks": ["x"]}}
    }
    return Event(id_, "validation", "staging", id_, payload, "me", NOW)


def test_promotion_needs_a_passing_validation_of_the_same_spec() -> None:
    assert check_promotion({"chat": "h1"}, [_validation(2, "h1", True)]) == []
    assert "never validated" in check_promotion({"chat": "h1"}, [])[0]
    assert "changed since" in check_promotion({"chat": "h2"}, [_validation(2, "h1", True)])[0]
    assert "failed" in check_promotion({"chat": "h1"}, [_validation(2, "h1", False)])[0]
    assert check_promotion({}, []) == []


def _revision(serial: int, spec: dict[str, Any], kind: Any = "apply", ok: bool = True) -> Revision:
    outcome: Any = "success" if ok else "failed"
    return Revision(serial, "production", kind, NOW, "me", "", "h", spec, {}, outcome, None, None)


def test_rollback_target_is_the_last_different_successful_revision() -> None:
    history = [
        _revision(5, {"v": 2}),
        _revision(4, {"v": 2}),
        _revision(3, {"v": 9}, ok=False),
        _revision(2, {}, kind="destroy"),
        _revision(1, {"v": 1}),
    ]
    assert pick_rollback_target(history, None).serial == 1
    assert pick_rollback_target(history, 4).serial == 4
    with pytest.raises(ReleaseError, match="revision 3 is not"):
        pick_rollback_target(history, 3)


def test_newer_versions_sorts_by_version_not_text() -> None:
    assert newer_versions("1.9.0", ["1.10.0", "1.2.0", "2.0.0", "1.9.0"]) == ("2.0.0", "1.10.0")


SPEC = """\
templates:
  base:
    engine:
      kind: sim
      version: "1.0.0"   # pinned
services:
  chat:
    extends: base
    model: sim:tiny
  code:
    model: sim:tiny
    engine: {kind: sim, version: 1.1.0, args: []}
"""


def test_upgrade_edits_the_line_that_holds_the_version_and_keeps_comments() -> None:
    """An inherited version is edited in its template; a flow mapping in place."""
    loaded = load_spec_text(SPEC)
    path = version_path(loaded.spec, "chat")
    assert path == ("templates", "base", "engine", "version")
    where = loaded.locations.get(path)
    assert where is not None
    edited = edit_version(SPEC, line=where.line, column=where.column, version="1.2.0")
    assert 'version: "1.2.0"   # pinned' in edited
    where = loaded.locations.get(version_path(loaded.spec, "code"))
    assert where is not None
    edited = edit_version(SPEC, line=where.line, column=where.column, version="1.2.0")
    assert 'engine: {kind: sim, version: "1.2.0", args: []}' in edited
