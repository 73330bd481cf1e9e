"""Every behavioural state test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmfleet.state import StateStore


@dataclass(frozen=True)
class Location:
    """Where a test's state lives, so other processes can open it too."""

    url: str
    base_dir: Path

    def open(self, **options: object) -> StateStore:
        return StateStore.open(self.url, base_dir=self.base_dir, **options)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if request.param == "sqlite":
        return Location("sqlite:///.llmfleet/state.db", tmp_path)
    return Location(request.getfixturevalue("pg_database"), tmp_path)


@pytest.fixture
def store(location: Location) -> Iterator[StateStore]:
    opened = location.open()
    try:
        yield opened
    finally:
        opened.close()
