"""The vector index in LanceDB: chunks, the ledger of ingested documents, the model identity.

Three tables in one LanceDB database (a folder or an ``s3://`` URI):

- ``chunks``: one row per chunk (id ``KEY#N``, key, content hash, text, vector);
- ``documents``: the ledger, one row per ingested document (key, content hash),
  written only after the document's chunks, so a run killed between the two
  finds the document changed next time and writes its chunks again (as
  LangChain's RecordManager keeps a record per document);
- ``identity``: the embedding model the vectors came from. An index never mixes
  two models' vectors: another model means ``rebuild``, which empties it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmfleet.errors import IngestError

CHUNKS, DOCUMENTS, IDENTITY = "chunks", "documents", "identity"


@dataclass(frozen=True, slots=True)
class DocumentChunks:
    """A document's new content: its chunks and their vectors, in order."""

    key: str
    content_hash: str
    version: str
    texts: tuple[str, ...]
    vectors: tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger row: the content hash written, and the source's version of it then."""

    content_hash: str
    version: str


@dataclass(frozen=True, slots=True)
class Hit:
    key: str
    text: str
    distance: float


class Index(Protocol):
    """What ingestion and retrieval need of an index: LanceDB (``VectorIndex``) or
    PostgreSQL with pgvector (``rag.pgvector.PgVectorIndex``)."""

    dimension: int

    def identity(self) -> str | None: ...

    def claim(self, model: str) -> None: ...

    def rebuild(self, model: str) -> None: ...

    def ledger(self) -> dict[str, Entry]: ...

    def write_documents(self, documents: Sequence[DocumentChunks]) -> None: ...

    def remove_documents(self, keys: Sequence[str]) -> None: ...

    def chunk_rows(self) -> list[dict[str, Any]]: ...

    def count_chunks(self) -> int: ...

    def search(self, vector: Iterable[float], *, k: int) -> list[Hit]: ...

    def compact(self) -> None: ...

    def close(self) -> None: ...


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class VectorIndex:
    """One LanceDB database; ``open`` creates the tables a new index needs."""

    def __init__(self, db: Any, dimension: int) -> None:
        self._db = db
        self.dimension = dimension

    @classmethod
    def open(cls, uri: str, *, dimension: int) -> VectorIndex:
        import lancedb

        try:
            index = cls(lancedb.connect(uri), dimension)
            index._ensure_tables()
        except (OSError, ValueError, RuntimeError) as exc:
            raise IngestError(f"cannot open the index at {uri}: {exc}") from exc
        return index

    @staticmethod
    def recorded_identity(uri: str) -> str | None:
        """The model an existing index holds, read without creating anything (``plan``)."""
        import lancedb

        try:
            rows = lancedb.connect(uri).open_table(IDENTITY).to_arrow().to_pylist()
        except ValueError:  # LanceDB's "Table 'identity' was not found"
            return None
        except (OSError, RuntimeError) as exc:
            raise IngestError(f"cannot read the index at {uri}: {exc}") from exc
        return str(rows[0]["model"]) if rows else None

    def _schemas(self) -> dict[str, Any]:
        import pyarrow as pa

        return {
            CHUNKS: pa.schema(
                [
                    ("id", pa.string()),
                    ("key", pa.string()),
                    ("content_hash", pa.string()),
                    ("ordinal", pa.int32()),
                    ("text", pa.string()),
                    ("vector", pa.list_(pa.float32(), self.dimension)),
                ]
            ),
            DOCUMENTS: pa.schema(
                [("key", pa.string()), ("content_hash", pa.string()), ("version", pa.string())]
            ),
            IDENTITY: pa.schema([("model", pa.string()), ("dimension", pa.int32())]),
        }

    def _ensure_tables(self) -> None:
        for name, schema in self._schemas().items():
            self._db.create_table(name, schema=schema, exist_ok=True)

    def identity(self) -> str | None:
        """The model whose vectors the index holds; None for an empty new index."""
        rows = self._db.open_table(IDENTITY).to_arrow().to_pylist()
        return str(rows[0]["model"]) if rows else None

    def claim(self, model: str) -> None:
        """Record ``model`` as the index's; only on an index without one."""
        self._db.open_table(IDENTITY).add([{"model": model, "dimension": self.dimension}])

    def rebuild(self, model: str) -> None:
        """Empty the index and give it to ``model``: nothing of the old vectors stays."""
        for name in (CHUNKS, DOCUMENTS, IDENTITY):
            self._db.drop_table(name, ignore_missing=True)
        self._ensure_tables()
        self.claim(model)

    def ledger(self) -> dict[str, Entry]:
        """Ingested documents by key."""
        rows = self._db.open_table(DOCUMENTS).to_arrow().to_pylist()
        return {str(r["key"]): Entry(str(r["content_hash"]), str(r["version"])) for r in rows}

    def write_documents(self, documents: Sequence[DocumentChunks]) -> None:
        """Replace the chunks of ``documents``, then record them in the ledger."""
        if not documents:
            return
        keys = [d.key for d in documents]
        self._delete_chunks(keys)
        rows = [
            {
                "id": f"{d.key}#{n}",
                "key": d.key,
                "content_hash": d.content_hash,
                "ordinal": n,
                "text": text,
                "vector": list(vector),
            }
            for d in documents
            for n, (text, vector) in enumerate(zip(d.texts, d.vectors, strict=True))
        ]
        if rows:
            self._db.open_table(CHUNKS).add(rows)
        ledger = self._db.open_table(DOCUMENTS)
        ledger.delete(_in("key", keys))
        ledger.add(
            [
                {"key": d.key, "content_hash": d.content_hash, "version": d.version}
                for d in documents
            ]
        )

    def remove_documents(self, keys: Sequence[str]) -> None:
        """Forget documents: their chunks first, then their ledger rows."""
        if keys:
            self._delete_chunks(keys)
            self._db.open_table(DOCUMENTS).delete(_in("key", keys))

    def _delete_chunks(self, keys: Sequence[str]) -> None:
        self._db.open_table(CHUNKS).delete(_in("key", keys))

    def chunk_rows(self) -> list[dict[str, Any]]:
        """Every chunk, ordered by id (for tests and reports)."""
        rows = self._db.open_table(CHUNKS).to_arrow().to_pylist()
        return sorted(rows, key=lambda r: str(r["id"]))

    def count_chunks(self) -> int:
        return int(self._db.open_table(CHUNKS).count_rows())

    def search(self, vector: Iterable[float], *, k: int) -> list[Hit]:
        """The ``k`` nearest chunks by cosine distance (exhaustive: exact at this size)."""
        table = self._db.open_table(CHUNKS)
        found = table.search(list(vector)).distance_type("cosine").limit(k).to_list()
        return [Hit(str(r["key"]), str(r["text"]), float(r["_distance"])) for r in found]

    def compact(self) -> None:
        """Merge the small fragments many small writes leave (LanceDB's optimize)."""
        for name in (CHUNKS, DOCUMENTS):
            self._db.open_table(name).optimize()

    def close(self) -> None:
        """Nothing held open: LanceDB opens its files per call."""


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(_quote(v) for v in values)})"
