"""One ingestion run: a pipeline's documents into its index, incrementally by content hash.

For each listed document that the globs include: read it, hash it (SHA-256 of
its bytes); unchanged (the ledger has that hash) is skipped; new or changed is
extracted, chunked, embedded and written; a ledger key no longer listed is
removed. Documents are written in groups (chunks first, the ledger last), so a
run killed at any point and started again ends with the same index as a run
that was never stopped. An unreadable or oversized document is skipped, with
its reason in the log and in the report; the run goes on.

Side effects: reads the source, calls the embedding service, writes the index.
Progress goes to ``on_event`` (the CLI draws it).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmfleet.errors import IndexModelMismatchError
from llmfleet.rag.chunking import chunk_text
from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.extract import UnreadableError, extract_text
from llmfleet.rag.index import DocumentChunks, Entry, Index
from llmfleet.rag.sources import DocumentRef, Source, matches
from llmfleet.spec.rag import PipelineSpec

log = logging.getLogger("llmfleet.ingest")
GROUP_CHUNKS = 256
"""Chunks written to the index per commit: few enough to lose little when killed,
many enough that LanceDB's per-commit cost stays small."""
REMOVE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Skipped:
    key: str
    reason: str


@dataclass
class IngestReport:
    """What a run did; ``skipped`` carries each skipped document's reason."""

    pipeline: str
    listed: int = 0
    unchanged: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    chunks_written: int = 0
    rebuilt_from: str | None = None
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    chunks_in_index: int = 0
    finished_at: float | None = None
    """Unix time the run ended; set by whoever runs it (the CLI), for the lag metric."""

    def to_json(self) -> dict[str, object]:
        body = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        body["skipped"] = [{"key": s.key, "reason": s.reason} for s in self.skipped]
        return body


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of the run: ``done`` of ``total`` documents looked at."""

    done: int
    total: int
    key: str
    outcome: str


Events = Callable[[Progress], None]


@dataclass
class _Pending:
    ref: DocumentRef
    content_hash: str
    texts: list[str]
    is_new: bool


@dataclass
class Ingestion:
    """Carries out one pipeline run; see the module doc."""

    name: str
    pipeline: PipelineSpec
    source: Source
    index: Index
    embedder: EmbeddingClient
    model_identity: str
    on_event: Events = lambda _event: None
    clock: Callable[[], float] = time.monotonic
    group_chunks: int = GROUP_CHUNKS
    _group: list[_Pending] = field(default_factory=list)

    def run(self, *, rebuild: bool = False) -> IngestReport:
        started = self.clock()
        report = IngestReport(self.name)
        self._check_identity(report, rebuild=rebuild)
        ledger = self.index.ledger()
        refs = [
            r
            for r in self.source.list_documents()
            if matches(r.key, self.pipeline.include, self.pipeline.exclude)
        ]
        report.listed = len(refs)
        for done, ref in enumerate(refs, start=1):
            outcome = self._look_at(ref, ledger, report)
            self.on_event(Progress(done, len(refs), ref.key, outcome))
        self._flush(report)
        listed = {r.key for r in refs}
        gone = sorted(key for key in ledger if key not in listed)
        for start in range(0, len(gone), REMOVE_BATCH):
            self.index.remove_documents(gone[start : start + REMOVE_BATCH])
        report.removed = len(gone)
        for key in gone:
            log.info("removed %s from index (no longer in the source)", key)
        report.chunks_in_index = self.index.count_chunks()
        report.seconds = self.clock() - started
        return report

    def _check_identity(self, report: IngestReport, *, rebuild: bool) -> None:
        recorded = self.index.identity()
        if recorded is None:
            self.index.claim(self.model_identity)
        elif recorded != self.model_identity:
            if not rebuild:
                raise IndexModelMismatchError(
                    f"the index of pipeline '{self.name}' holds vectors of {recorded}; the "
                    f"spec's embedding service now runs {self.model_identity}",
                    hint="llmfleet plan shows the rebuild; run llmfleet ingest "
                    f"{self.name} --rebuild to carry it out",
                )
            log.warning("rebuilding index: embedding model %s -> %s", recorded, self.model_identity)
            self.index.rebuild(self.model_identity)
            report.rebuilt_from = recorded

    def _look_at(self, ref: DocumentRef, ledger: dict[str, Entry], report: IngestReport) -> str:
        known = ledger.get(ref.key)
        if known is not None and ref.version and known.version == ref.version:
            report.unchanged += 1  # the same ETag / size and mtime: the same bytes as hashed
            return "unchanged"
        if ref.size > self.pipeline.max_document_bytes:
            limit = self.pipeline.max_document_bytes
            return self._skip(report, ref, f"{ref.size} bytes, over max_document_bytes {limit}")
        try:
            data = self.source.read(ref.key)
        except Exception as exc:  # any failure to read one document skips it, not the run
            return self._skip(report, ref, f"cannot be read: {type(exc).__name__}: {exc}")
        digest = hashlib.sha256(data).hexdigest()
        if known is not None and known.content_hash == digest:
            report.unchanged += 1
            return "unchanged"
        try:
            text = extract_text(ref.key, data)
        except UnreadableError as exc:
            return self._skip(report, ref, exc.reason)
        chunk = self.pipeline.chunk
        texts = chunk_text(text, size=chunk.size, overlap=chunk.overlap)
        self._group.append(_Pending(ref, digest, texts, is_new=ref.key not in ledger))
        if sum(len(p.texts) for p in self._group) >= self.group_chunks:
            self._flush(report)
        return "new" if ref.key not in ledger else "changed"

    def _skip(self, report: IngestReport, ref: DocumentRef, reason: str) -> str:
        log.warning("skipped %s: %s", ref.key, reason)
        report.skipped.append(Skipped(ref.key, reason))
        return "skipped"

    def _flush(self, report: IngestReport) -> None:
        group, self._group = self._group, []
        if not group:
            return
        texts = [t for p in group for t in p.texts]
        vectors = self._embed(texts)
        written, at = [], 0
        for pending in group:
            mine = vectors[at : at + len(pending.texts)]
            at += len(pending.texts)
            written.append(
                DocumentChunks(
                    pending.ref.key,
                    pending.content_hash,
                    pending.ref.version,
                    tuple(pending.texts),
                    tuple(tuple(v) for v in mine),
                )
            )
        self.index.write_documents(written)
        report.chunks_written += len(texts)
        report.added += sum(1 for p in group if p.is_new)
        report.changed += sum(1 for p in group if not p.is_new)

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        size = self.pipeline.batch_size
        out: list[list[float]] = []
        for start in range(0, len(texts), size):
            out.extend(self.embedder.embed(texts[start : start + size]))
        return out
