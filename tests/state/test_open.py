"""Opening a state: where it lives, and every way it can be unusable."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from llmfleet.errors import StateCorruptError, StateError
from llmfleet.state import StateStore
from llmfleet.state.tables import SCHEMA_VERSION, meta
from tests.fixtures.postgres import free_port
from tests.state.conftest import Location
from tests.state.contenders import open_fresh


def execute(location: Location, sql: str) -> None:
    """Run raw SQL on a test's database, as a program other than llmfleet would."""
    url = location.url.replace("sqlite:///", f"sqlite:///{location.base_dir}/")
    (location.base_dir / ".llmfleet").mkdir(exist_ok=True)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def test_sqlite_path_is_relative_to_the_spec_folder(tmp_path: Path) -> None:
    """sqlite:///rel/path lands under base_dir, parent folders created, schema versioned."""
    with StateStore.open("sqlite:///deep/er/state.db", base_dir=tmp_path) as store:
        assert store.where == str(tmp_path / "deep" / "er" / "state.db")
        with store._engine.connect() as conn:
            version = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
    assert version == str(SCHEMA_VERSION)
    assert (tmp_path / "deep" / "er" / "state.db").is_file()


def test_absolute_and_memory_sqlite(tmp_path: Path) -> None:
    absolute = tmp_path / "abs" / "state.db"
    with StateStore.open(f"sqlite:///{absolute}", base_dir=Path("/nonexistent")) as store:
        assert store.where == str(absolute)
    with StateStore.open("sqlite://", base_dir=tmp_path) as store:
        store.record_event(kind="k", environment="e", serial=None, payload={}, user="u")
        assert len(store.events()) == 1


def test_reopening_keeps_the_history(location: Location) -> None:
    with location.open() as store:
        store.record_event(
            kind="validation", environment="staging", serial=None, payload={}, user="u"
        )
    with location.open() as store:
        assert [e.kind for e in store.events()] == ["validation"]


def test_garbage_file_is_a_corrupt_state_with_path_and_hint(tmp_path: Path) -> None:
    """A file that is not SQLite gives StateCorruptError naming the file and what to do."""
    path = tmp_path / ".llmfleet" / "state.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(StateCorruptError) as caught:
        StateStore.open("sqlite:///.llmfleet/state.db", base_dir=tmp_path)
    message = str(caught.value)
    assert str(path) in message
    assert "not a readable llmfleet state database" in message
    assert caught.value.hint and "backup" in caught.value.hint
    assert "Traceback" not in message and "[SQL:" not in message


def test_tables_of_another_program_are_refused(location: Location) -> None:
    """A database holding someone else's tables is not taken over."""
    execute(location, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(StateCorruptError, match=r"tables that are not llmfleet's \(customers\)"):
        location.open()


def test_newer_schema_is_refused(location: Location) -> None:
    location.open().close()
    execute(location, "UPDATE llmfleet_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="newer llmfleet"):
        location.open()


def test_changed_table_is_corrupt(location: Location) -> None:
    location.open().close()
    execute(location, "DROP TABLE llmfleet_artifacts")
    execute(location, "CREATE TABLE llmfleet_artifacts (kind TEXT)")
    with pytest.raises(StateCorruptError, match="llmfleet_artifacts lacks columns key"):
        location.open()


def test_busy_sqlite_is_a_clear_error_after_a_bounded_wait(tmp_path: Path) -> None:
    """A write lock held elsewhere makes writes fail after busy_timeout_s, reads still work."""
    store = StateStore.open("sqlite:///state.db", base_dir=tmp_path, busy_timeout_s=0.3)
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StateError, match=r"stayed busy for more than 0.3s") as caught:
            store.record_event(kind="k", environment="e", serial=None, payload={}, user="u")
        assert 0.25 < time.monotonic() - started < 5
        assert str(tmp_path / "state.db") in str(caught.value)
        assert store.events() == []
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


def test_commands_opening_a_fresh_sqlite_state_at_once_all_get_it(tmp_path: Path) -> None:
    """Two commands turning a new file into a WAL database at once could deadlock in
    SQLite, which fails one of them at once: it was told the state "stayed busy for
    more than 10s". Rounds of openers racing on fresh files all succeed."""
    context = multiprocessing.get_context("spawn")
    count, rounds = 4, 20
    base_dirs = [str(tmp_path / f"round{number}") for number in range(rounds)]
    barrier, results = context.Barrier(count), context.Queue()
    openers = [
        context.Process(target=open_fresh, args=(base_dirs, barrier, results))
        for _ in range(count)
    ]
    for opener in openers:
        opener.start()
    try:
        failures = [failure for _ in openers for failure in results.get(timeout=120)]
    finally:
        for opener in openers:
            opener.join(timeout=30)
            if opener.exitcode is None:
                opener.kill()
    assert failures == []


def test_unfit_sqlite_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match="cannot create the folder"):
        StateStore.open("sqlite:///file/state.db", base_dir=tmp_path)
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(StateError, match="cannot open the state database"):
        StateStore.open("sqlite:///folder.db", base_dir=tmp_path)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "redis://:pw@h"])
def test_unsupported_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(StateError) as caught:
        StateStore.open(url, base_dir=tmp_path)
    assert "pw" not in str(caught.value)
    assert "sqlite:///PATH" in str(caught.value)


def test_unreachable_postgres_fails_fast_with_password_masked(tmp_path: Path) -> None:
    """A closed port fails within seconds and the message never shows the password."""
    url = f"postgresql://fleet:s3cr%40t-pw@127.0.0.1:{free_port()}/state"
    started = time.monotonic()
    with pytest.raises(StateError) as caught:
        StateStore.open(url, base_dir=tmp_path, connect_timeout_s=2)
    assert time.monotonic() - started < 8
    shown = f"{caught.value}\n{caught.value.hint}"
    assert "s3cr" not in shown
    assert "fleet:***@127.0.0.1" in shown
    assert "cannot reach the state database" in shown


@pytest.mark.postgres
def test_postgres_scheme_aliases(pg_database: str, tmp_path: Path) -> None:
    """postgres:// and postgresql+psycopg:// name the same database as postgresql://."""
    for url in [pg_database.replace("postgresql://", "postgres://"),
                pg_database.replace("postgresql://", "postgresql+psycopg://")]:  # fmt: skip
        with StateStore.open(url, base_dir=tmp_path) as store:
            store.record_event(kind="k", environment="e", serial=None, payload={}, user="u")
    with StateStore.open(pg_database, base_dir=tmp_path) as store:
        assert len(store.events()) == 2
