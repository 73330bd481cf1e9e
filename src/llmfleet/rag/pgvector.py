"""The vector index in PostgreSQL with pgvector: the same contract as the LanceDB one.

Three tables, named after the spec's ``table``:

- ``TABLE``: one row per chunk (id ``KEY#N``, key, content hash, text, ``vector(D)``),
  with an HNSW index for cosine distance (pgvector's ``vector_cosine_ops``);
- ``TABLE_documents``: the ledger, one row per ingested document;
- ``TABLE_identity``: the embedding model the vectors came from.

A group of documents is written in one transaction (its chunks and its ledger
rows together), so a run killed at any point leaves whole documents only; a
rebuild drops and makes the tables again in one transaction. The database's URL
carries a password: it is read from the environment by the caller, kept only in
the connection, and wiped from every error message (libpq repeats a malformed
connection string in its errors).

Side effects: connects to PostgreSQL; ``open`` creates the ``vector`` extension
(if the role may) and the tables; ``recorded_identity`` creates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from llmfleet.errors import IngestError
from llmfleet.rag.index import DocumentChunks, Entry, Hit
from llmfleet.spec.rag import MAX_TABLE_CHARS

HNSW_MAX_DIMENSION = 2000
"""pgvector indexes ``vector`` columns of at most 2,000 dimensions; above, search scans."""
CONNECT_TIMEOUT_S = 10


def scrub(text: str, url: str) -> str:
    """``text`` without the URL or its password (for errors and logs)."""
    out = text.replace(url, "postgresql://***")
    password = _password(url)
    if password:  # as written in the URL, and as libpq reads it (percent-decoded)
        for form in (password, unquote(password)):
            out = out.replace(form, "***")
    return out


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


@contextmanager
def translated(what: str, url: str) -> Iterator[None]:
    """psycopg's errors as ``IngestError`` naming ``what`` failed; the secret wiped."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        message = scrub(str(exc).strip(), url)
        raise IngestError(
            f"{what}: {message}",
            hint="check the database named by the index's url_env (reachable, the role may "
            "create tables, the vector extension installed)",
        ) from None


class PgVectorIndex:
    """One pgvector index (three tables) on one connection; ``open`` makes what is missing."""

    def __init__(self, conn: Any, table: str, dimension: int, url: str) -> None:
        self._conn = conn
        self._url = url
        self.table = table
        self.dimension = dimension

    @classmethod
    def open(cls, url: str, *, table: str, dimension: int) -> PgVectorIndex:
        _check_table(table)
        import psycopg
        from pgvector.psycopg import register_vector

        with translated(f"cannot open the pgvector index {table}", url):
            conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
            try:
                _ensure_extension(conn)
                register_vector(conn)
                index = cls(conn, table, dimension, url)
                index._ensure_tables()
                conn.commit()
            except BaseException:
                conn.close()
                raise
        return index

    @staticmethod
    def recorded_identity(url: str, *, table: str) -> str | None:
        """The model an existing index holds, read without creating anything (``plan``)."""
        import psycopg
        from psycopg import sql

        _check_table(table)
        with (
            translated(f"cannot read the pgvector index {table}", url),
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn,
        ):
            name = f"{table}_identity"
            found = conn.execute("SELECT to_regclass(%s)", [_qualified(name)]).fetchone()
            if found is None or found[0] is None:
                return None
            row = conn.execute(
                sql.SQL("SELECT model FROM {} LIMIT 1").format(sql.Identifier(name))
            ).fetchone()
            return None if row is None else str(row[0])

    def close(self) -> None:
        self._conn.close()

    # -- tables

    def _names(self) -> tuple[Any, Any, Any]:
        from psycopg import sql

        return (
            sql.Identifier(self.table),
            sql.Identifier(f"{self.table}_documents"),
            sql.Identifier(f"{self.table}_identity"),
        )

    def _ensure_tables(self) -> None:
        from psycopg import sql

        chunks, documents, identity = self._names()
        statements = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, key text NOT NULL, "
                "content_hash text NOT NULL, ordinal integer NOT NULL, text text NOT NULL, "
                "vector vector({}) NOT NULL)"
            ).format(chunks, sql.Literal(self.dimension)),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (key)").format(
                sql.Identifier(f"{self.table}_key"), chunks
            ),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, "
                "content_hash text NOT NULL, version text NOT NULL)"
            ).format(documents),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (model text NOT NULL, dimension integer NOT NULL)"
            ).format(identity),
        ]
        if self.dimension <= HNSW_MAX_DIMENSION:
            statements.append(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (vector vector_cosine_ops)"
                ).format(sql.Identifier(f"{self.table}_hnsw"), chunks)
            )
        for statement in statements:
            self._conn.execute(statement)

    # -- the contract shared with the LanceDB index (rag.index.Index)

    def identity(self) -> str | None:
        """The model whose vectors the index holds; None for an empty new index."""
        from psycopg import sql

        with self._transaction("read the index's model"):
            row = self._conn.execute(
                sql.SQL("SELECT model FROM {} LIMIT 1").format(self._names()[2])
            ).fetchone()
        return None if row is None else str(row[0])

    def claim(self, model: str) -> None:
        """Record ``model`` as the index's; only on an index without one."""
        from psycopg import sql

        with self._transaction("record the index's model", writes=True):
            self._conn.execute(
                sql.SQL(
                    "INSERT INTO {0} (model, dimension) SELECT %s, %s "
                    "WHERE NOT EXISTS (SELECT 1 FROM {0})"
                ).format(self._names()[2]),
                [model, self.dimension],
            )

    def rebuild(self, model: str) -> None:
        """Empty the index and give it to ``model``, in one transaction."""
        from psycopg import sql

        with self._transaction("rebuild the index", writes=True):
            for name in self._names():
                self._conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
            self._ensure_tables()
            self._conn.execute(
                sql.SQL("INSERT INTO {} (model, dimension) VALUES (%s, %s)").format(
                    self._names()[2]
                ),
                [model, self.dimension],
            )

    def ledger(self) -> dict[str, Entry]:
        """Ingested documents by key."""
        from psycopg import sql

        with self._transaction("read the ledger"):
            rows = self._conn.execute(
                sql.SQL("SELECT key, content_hash, version FROM {}").format(self._names()[1])
            ).fetchall()
        return {str(key): Entry(str(digest), str(version)) for key, digest, version in rows}

    def write_documents(self, documents: Sequence[DocumentChunks]) -> None:
        """Replace the chunks of ``documents`` and their ledger rows, in one transaction."""
        if not documents:
            return
        import numpy as np
        from psycopg import sql

        chunks, ledger, _ = self._names()
        keys = [d.key for d in documents]
        with self._transaction("write documents", writes=True):
            self._delete_chunks(keys)
            copy_sql = sql.SQL(
                "COPY {} (id, key, content_hash, ordinal, text, vector) FROM STDIN "
                "WITH (FORMAT BINARY)"
            ).format(chunks)
            with self._conn.cursor().copy(copy_sql) as copy:
                copy.set_types(["text", "text", "text", "int4", "text", "vector"])
                for d in documents:
                    for n, (text, vector) in enumerate(zip(d.texts, d.vectors, strict=True)):
                        copy.write_row(
                            (
                                f"{d.key}#{n}",
                                d.key,
                                d.content_hash,
                                n,
                                text,
                                np.asarray(vector, dtype=np.float32),
                            )
                        )
            self._conn.cursor().executemany(
                sql.SQL(
                    "INSERT INTO {} (key, content_hash, version) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET content_hash = EXCLUDED.content_hash, "
                    "version = EXCLUDED.version"
                ).format(ledger),
                [(d.key, d.content_hash, d.version) for d in documents],
            )

    def remove_documents(self, keys: Sequence[str]) -> None:
        """Forget documents: their chunks and ledger rows together."""
        if not keys:
            return
        from psycopg import sql

        with self._transaction("remove documents", writes=True):
            self._delete_chunks(keys)
            self._conn.execute(
                sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(self._names()[1]),
                [list(keys)],
            )

    def _delete_chunks(self, keys: Sequence[str]) -> None:
        from psycopg import sql

        self._conn.execute(
            sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(self._names()[0]), [list(keys)]
        )

    def chunk_rows(self) -> list[dict[str, Any]]:
        """Every chunk, ordered by id (for tests and reports); vectors as lists."""
        from psycopg import sql

        with self._transaction("read the chunks"):
            cursor = self._conn.execute(
                sql.SQL(
                    "SELECT id, key, content_hash, ordinal, text, vector FROM {} ORDER BY id"
                ).format(self._names()[0])
            )
            names = [column.name for column in cursor.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["vector"] = [float(x) for x in row["vector"].to_list()]
        return sorted(rows, key=lambda r: str(r["id"]))

    def count_chunks(self) -> int:
        from psycopg import sql

        with self._transaction("count the chunks"):
            row = self._conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(self._names()[0])
            ).fetchone()
        return int(row[0]) if row else 0

    def search(self, vector: Iterable[float], *, k: int) -> list[Hit]:
        """The ``k`` nearest chunks by cosine distance (HNSW, searched ``k`` wide at least)."""
        import numpy as np
        from psycopg import sql

        query = np.asarray(list(vector), dtype=np.float32)
        with self._transaction("search the index"):
            self._conn.execute(
                sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(40, k)))
            )
            rows = self._conn.execute(
                sql.SQL(
                    "SELECT key, text, vector <=> %s AS distance FROM {} "
                    "ORDER BY vector <=> %s LIMIT %s"
                ).format(self._names()[0]),
                [query, query, k],
            ).fetchall()
        return [Hit(str(key), str(text), float(distance)) for key, text, distance in rows]

    def compact(self) -> None:
        """Nothing to merge: PostgreSQL's autovacuum keeps the tables (LanceDB needs it)."""

    @contextmanager
    def _transaction(self, what: str, *, writes: bool = False) -> Iterator[None]:
        """One transaction; a writing one holds the index's lock, so two runs at once
        write one after the other (each replaces whole documents: the last one wins)
        instead of failing on each other's chunk ids."""
        with translated(f"cannot {what} in the pgvector index {self.table}", self._url):
            try:
                if writes:
                    self._conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"llmfleet:{self.table}"]
                    )
                yield
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()


def _ensure_extension(conn: Any) -> None:
    import psycopg

    found = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if found is not None:
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        raise IngestError(
            "the database has no vector extension and this role may not create it",
            hint="ask its administrator to run CREATE EXTENSION vector (pgvector) in it",
        ) from None
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile):
        conn.rollback()
        raise IngestError(
            "pgvector is not installed on this PostgreSQL server",
            hint="install pgvector on the server (Debian 13: postgresql-17-pgvector), then "
            "run ingest again",
        ) from None


def _qualified(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_table(table: str) -> None:
    if len(table) > MAX_TABLE_CHARS:
        raise IngestError(
            f"the pgvector table name {table!r} is {len(table)} characters; PostgreSQL "
            f"allows {MAX_TABLE_CHARS} here (its names stop at 63, with _documents added)",
            hint="set a shorter table: in the index (it may use {name} and {environment})",
        )
