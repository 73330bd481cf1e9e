"""Ingestion from a real S3 server (SeaweedFS) into LanceDB, embedded by the real llama-server:
incremental by content hash, idempotent, and equal after a kill half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmfleet.errors import IndexModelMismatchError
from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.index import VectorIndex
from llmfleet.rag.ingest import Ingestion, IngestReport
from llmfleet.rag.sources import S3Source
from llmfleet.spec.rag import PipelineSpec
from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.processes import stop_process
from tests.rag.conftest import S3Server

IDENTITY = '{"model": "minilm"}'
PIPELINE = PipelineSpec(
    source="s3://docs/handbook",
    include=("**/*.md", "**/*.html", "**/*.txt"),
    exclude=("drafts/**",),
    chunk={"size": 200, "overlap": 40},
    index="docs",
    max_document_bytes=4000,
    batch_size=16,
)


def paragraph(n: int) -> str:
    return (
        f"Section {n}. The gateway keeps request {n} alive: it retries on another replica, "
        f"and a stream broken mid-answer is continued elsewhere. Replica {n % 3} restarts.\n\n"
    )


def ingest(s3: S3Server, bucket: str, url: str, index_dir: Path, **kw: object) -> IngestReport:
    source = S3Source(bucket, "handbook", s3.client())
    embedder = EmbeddingClient(url, model="embed", dimension=384)
    try:
        run = Ingestion(
            name="handbook",
            pipeline=PIPELINE,
            source=source,
            index=VectorIndex.open(str(index_dir), dimension=384),
            embedder=embedder,
            model_identity=str(kw.pop("identity", IDENTITY)),
        )
        return run.run(**kw)  # type: ignore[arg-type]
    finally:
        embedder.close()


def snapshot(index_dir: Path) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    index = VectorIndex.open(str(index_dir), dimension=384)
    rows = [(r["id"], r["content_hash"], r["text"]) for r in index.chunk_rows()]
    return rows, index.ledger()


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_add_change_delete_and_skip(
    s3_server: S3Server, embedding_url: str, tmp_path: Path
) -> None:
    """First run embeds what the globs include; a re-run embeds nothing; a changed object
    is re-embedded, a deleted one removed, an unreadable or oversized one skipped with
    its reason, and retrieval finds the right document."""
    s3 = s3_server.client()
    s3.create_bucket(Bucket="incr")
    put = lambda key, body: s3.put_object(Bucket="incr", Key=f"handbook/{key}", Body=body)  # noqa: E731
    put(
        "rollback.md",
        b"# Rollback\n\nllmfleet rollback restores a recorded revision in one command.",
    )
    put(
        "gateway/failover.html",
        b"<html><script>x()</script><p>" + paragraph(1).encode() + b"</p></html>",
    )
    put("notes.txt", "".join(paragraph(n) for n in range(3)).encode())
    put("drafts/wip.md", b"excluded by the exclude glob")
    put("image.png", b"\x89PNG not included")
    put("latin1.md", "caf\xe9".encode("latin-1"))
    put("huge.md", b"a " * 3000)
    index = tmp_path / "index"

    first = ingest(s3_server, "incr", embedding_url, index)
    assert (first.listed, first.added, first.unchanged) == (5, 3, 0)
    reasons = {s.key: s.reason for s in first.skipped}
    assert reasons["latin1.md"].startswith("not UTF-8 text")
    assert "over max_document_bytes 4000" in reasons["huge.md"]
    rows, ledger = snapshot(index)
    assert set(ledger) == {"rollback.md", "gateway/failover.html", "notes.txt"}
    assert not any("x()" in text for _, _, text in rows)  # scripts are not text

    again = ingest(s3_server, "incr", embedding_url, index)
    assert (again.unchanged, again.chunks_written, again.removed) == (3, 0, 0)
    assert snapshot(index) == (rows, ledger)

    put("notes.txt", b"Quotas and API keys: a key has a budget of tokens per minute.")
    s3.delete_object(Bucket="incr", Key="handbook/rollback.md")
    third = ingest(s3_server, "incr", embedding_url, index)
    assert (third.changed, third.removed, third.unchanged) == (1, 1, 1)
    rows, ledger = snapshot(index)
    assert set(ledger) == {"gateway/failover.html", "notes.txt"}
    assert [text for id_, _, text in rows if id_.startswith("notes.txt#")] == [
        "Quotas and API keys: a key has a budget of tokens per minute."
    ]
    client = EmbeddingClient(embedding_url, model="embed", dimension=384)
    (question,) = client.embed(["How many tokens may a key use?"])
    client.close()
    assert VectorIndex.open(str(index), dimension=384).search(question, k=1)[0].key == "notes.txt"


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_another_model_is_never_mixed_in(
    s3_server: S3Server, embedding_url: str, tmp_path: Path
) -> None:
    """An index filled by one model refuses another's vectors until rebuilt; the rebuild
    empties it and embeds every document again."""
    s3 = s3_server.client()
    s3.create_bucket(Bucket="model")
    s3.put_object(Bucket="model", Key="handbook/a.md", Body=paragraph(1).encode())
    index = tmp_path / "index"
    ingest(s3_server, "model", embedding_url, index)
    with pytest.raises(IndexModelMismatchError, match="--rebuild"):
        ingest(s3_server, "model", embedding_url, index, identity='{"model": "other"}')
    assert VectorIndex.open(str(index), dimension=384).identity() == IDENTITY
    rebuilt = ingest(
        s3_server, "model", embedding_url, index, identity='{"model": "other"}', rebuild=True
    )
    assert (rebuilt.rebuilt_from, rebuilt.added) == (IDENTITY, 1)
    assert VectorIndex.open(str(index), dimension=384).identity() == '{"model": "other"}'


KILLED_RUN = """
import sys
from tests.rag.test_ingest import ingest_in_child
ingest_in_child(*sys.argv[1:])
"""


def ingest_in_child(endpoint: str, bucket: str, url: str, index_dir: str) -> None:
    """The run the kill test stops: small groups, so it commits often before it dies."""
    import boto3

    source = S3Source(bucket, "handbook", boto3.client("s3", endpoint_url=endpoint))
    embedder = EmbeddingClient(url, model="embed", dimension=384)
    Ingestion(
        name="handbook",
        pipeline=PIPELINE,
        source=source,
        index=VectorIndex.open(index_dir, dimension=384),
        embedder=embedder,
        model_identity=IDENTITY,
        group_chunks=2,
    ).run()


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_killed_half_way_then_rerun_equals_an_uninterrupted_run(
    s3_server: S3Server, embedding_url: str, tmp_path: Path
) -> None:
    """SIGKILL once some documents are in, run again: the same chunks, texts and ledger as
    one run that was never stopped (vectors within float noise)."""
    s3 = s3_server.client()
    s3.create_bucket(Bucket="kill")
    for n in range(16):
        s3.put_object(Bucket="kill", Key=f"handbook/doc{n:02}.md", Body=paragraph(n).encode())
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ingest(s3_server, "kill", embedding_url, whole)

    env = {**os.environ, **s3_server.env()}
    argv = [
        sys.executable,
        "-c",
        KILLED_RUN,
        s3_server.endpoint,
        "kill",
        embedding_url,
        str(killed),
    ]
    child = subprocess.Popen(argv, env=env, cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if killed.exists() and len(VectorIndex.open(str(killed), dimension=384).ledger()) >= 3:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        stop_process(child)
    partial = len(VectorIndex.open(str(killed), dimension=384).ledger())
    assert 3 <= partial < 16

    rerun = ingest(s3_server, "kill", embedding_url, killed)
    assert rerun.unchanged >= 3
    assert snapshot(killed) == snapshot(whole)
    vectors = {
        r["id"]: r["vector"] for r in VectorIndex.open(str(whole), dimension=384).chunk_rows()
    }
    for row in VectorIndex.open(str(killed), dimension=384).chunk_rows():
        assert (
            max(abs(a - b) for a, b in zip(row["vector"], vectors[row["id"]], strict=True)) < 1e-3
        )


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_the_index_itself_can_live_in_object_storage(
    s3_server: S3Server, embedding_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index at s3://BUCKET/PREFIX (LanceDB on SeaweedFS, endpoint and keys from the
    environment) is filled, read back and skipped unchanged on a re-run; reading its
    model for plan before it exists creates nothing."""
    for name, value in {**s3_server.env(), "AWS_ALLOW_HTTP": "true"}.items():
        monkeypatch.setenv(name, value)
    s3 = s3_server.client()
    s3.create_bucket(Bucket="where")
    s3.create_bucket(Bucket="indexes")
    s3.put_object(Bucket="where", Key="handbook/a.md", Body=paragraph(7).encode())
    uri = "s3://indexes/docs"
    assert VectorIndex.recorded_identity(uri) is None  # what plan reads: writes nothing
    assert "Contents" not in s3.list_objects_v2(Bucket="indexes")
    embedder = EmbeddingClient(embedding_url, model="embed", dimension=384)
    try:
        for expected_added in (1, 0):
            report = Ingestion(
                name="handbook",
                pipeline=PIPELINE,
                source=S3Source("where", "handbook", s3),
                index=VectorIndex.open(uri, dimension=384),
                embedder=embedder,
                model_identity=IDENTITY,
            ).run()
            assert report.added == expected_added
    finally:
        embedder.close()
    index = VectorIndex.open(uri, dimension=384)
    assert (index.identity(), list(index.ledger())) == (IDENTITY, ["a.md"])
    assert index.count_chunks() == report.chunks_in_index >= 1
