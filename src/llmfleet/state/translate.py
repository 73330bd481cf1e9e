"""The one boundary where database exceptions become ``StateError``s.

Messages name the database as ``Target.display`` (password masked) and keep
only the driver's first words, with any password scrubbed, because a state
error is shown to a person, who needs what failed and what to do, not a
traceback of SQLAlchemy internals.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from urllib.parse import quote

from sqlalchemy import exc as sa_exc

from llmfleet.errors import FleetError, StateCorruptError, StateError
from llmfleet.state.connection import Target

DATABASE_ERRORS: tuple[type[BaseException], ...] = (sa_exc.SQLAlchemyError, sqlite3.Error)
CORRUPT_MARKERS = ("file is not a database", "malformed", "file is encrypted")
BUSY_MARKERS = ("database is locked", "database table is locked", "lock timeout")


def _psycopg() -> ModuleType | None:
    """psycopg if a PostgreSQL connection loaded it; importing it costs every CLI call
    a tenth of a second, and its errors cannot occur before it is loaded."""
    return sys.modules.get("psycopg")


def _database_errors() -> tuple[type[BaseException], ...]:
    psycopg = _psycopg()
    return DATABASE_ERRORS + ((psycopg.Error,) if psycopg is not None else ())


Recovery = Callable[[], str | None]


def _no_recovery() -> str | None:
    return None


@contextmanager
def translating(target: Target, recovery: Recovery = _no_recovery) -> Iterator[None]:
    """Re-raise any database exception from the block as a ``StateError``.

    ``recovery`` says how to get a damaged state back (the snapshot to restore), if
    anything can; it is asked only when the database turns out to be damaged.
    """
    try:
        yield
    except StateCorruptError as exc:
        exc.hint = recovery() or exc.hint
        raise
    except FleetError:
        raise
    except Exception as exc:
        if not isinstance(exc, _database_errors()):
            raise
        error = translate(exc, target)
        if isinstance(error, StateCorruptError):
            error.hint = recovery() or error.hint
        raise error from exc


def translate(exc: BaseException, target: Target) -> StateError:
    """The ``StateError`` a person should see for ``exc`` (pure)."""
    cause: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        cause = exc.orig
    reason = describe(cause, target)
    lowered = reason.lower()
    where = target.display
    if any(marker in lowered for marker in CORRUPT_MARKERS):
        return StateCorruptError(
            f"{where} is not a readable llmfleet state database ({reason})",
            hint="restore it from a backup, or move it away and llmfleet will start "
            "a new, empty state there",
        )
    psycopg = _psycopg()
    lock_timeout = psycopg is not None and isinstance(cause, psycopg.errors.LockNotAvailable)
    if any(marker in lowered for marker in BUSY_MARKERS) or lock_timeout:
        return StateError(
            f"the state database {where} stayed busy for more than "
            f"{target.busy_timeout_s:g}s ({reason})",
            hint="another llmfleet command is writing to it; retry when it is done",
        )
    if "unable to open database file" in lowered:
        return StateError(
            f"cannot open the state database {where} ({reason})",
            hint="check that its folder exists and is writable",
        )
    if psycopg is not None and isinstance(cause, psycopg.OperationalError) and not target.is_sqlite:
        return StateError(
            f"cannot reach the state database {where}: {reason}",
            hint="check that PostgreSQL runs there and that the user, password and "
            "database in `state:` are right",
        )
    return StateError(f"the state database {where} failed: {reason}")


def describe(cause: BaseException, target: Target) -> str:
    """The driver's message on one line, with the password scrubbed out."""
    text = " ".join(str(cause).split()) or type(cause).__name__
    if "[SQL:" in text:  # SQLAlchemy's own StatementError text ends with the SQL
        text = text.split("[SQL:", 1)[0].strip()
    return scrub(text, target.password)


def scrub(text: str, password: str | None) -> str:
    """``text`` with every spelling of ``password`` replaced by ``***``."""
    if not password:
        return text
    for spelling in {password, quote(password, safe=""), quote(password)}:
        text = text.replace(spelling, "***")
    return text
