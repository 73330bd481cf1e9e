"""The state store: revisions, locks, artifacts, events and API keys.

SQLite under ``.llmfleet/`` by default, PostgreSQL by URL; see ``store``.
"""

from __future__ import annotations

from llmfleet.state.records import (
    ApiKey,
    Artifact,
    Event,
    LockInfo,
    Measurement,
    Outcome,
    Revision,
    RevisionKind,
)
from llmfleet.state.store import StateStore

__all__ = [
    "ApiKey",
    "Artifact",
    "Event",
    "LockInfo",
    "Measurement",
    "Outcome",
    "Revision",
    "RevisionKind",
    "StateStore",
]
