"""``llmfleet ingest PIPELINE``: one run, drawn as a progress bar, reported and logged.

The report (JSON) and the log of the last run are kept in the project's home
(``.llmfleet/ingest/ENVIRONMENT/``) in private files; the agent's metrics endpoint
reads the reports (``observe.ingestion``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmfleet.cli.output import plain
from llmfleet.cli.workspace import Workspace
from llmfleet.observe.ingestion import INGEST_FOLDER
from llmfleet.private_files import open_private, private_folder
from llmfleet.rag import ingest as ingesting
from llmfleet.rag.planning import describe_identity, model_identity
from llmfleet.rag.runs import embedder_for, open_index, pipeline_of, plan_indexes
from llmfleet.rag.sources import open_source


def reports_dir(home: Path, environment: str) -> Path:
    """Where the last run's report and log are: the project's home, read by the agent."""
    return home / INGEST_FOLDER / environment


def run_ingest(
    ws: Workspace, name: str, *, rebuild: bool, api_key: str | None, console: Console
) -> ingesting.IngestReport:
    spec, env = ws.loaded.spec, ws.desired
    pipeline = pipeline_of(spec, name)
    index_spec = spec.indexes[pipeline.index]
    index = open_index(spec, ws.spec_dir, pipeline.index, environment=env.name)
    folder = reports_dir(ws.settings.home, env.name)
    private_folder(folder)
    embedder = embedder_for(env, index_spec, api_key=api_key)
    run = ingesting.Ingestion(
        name=name,
        pipeline=pipeline,
        source=open_source(pipeline.source, base_dir=ws.spec_dir),
        index=index,
        embedder=embedder,
        model_identity=model_identity(env.services[index_spec.embedding], index_spec),
    )
    handler = _log_handler(folder / f"{name}.log")
    ingesting.log.addHandler(handler)
    ingesting.log.setLevel(logging.INFO)
    try:
        with _bar(console) as bar:
            task = bar.add_task(f"ingest {name}", total=None)

            def show(event: ingesting.Progress) -> None:
                bar.update(task, completed=event.done, total=event.total)

            run.on_event = show
            report = run.run(rebuild=rebuild)
            report.finished_at = time.time()
    finally:
        ingesting.log.removeHandler(handler)
        handler.close()
        embedder.close()
    _write_private(folder / f"{name}.json", json.dumps(report.to_json(), indent=2))
    return report


def render_report(console: Console, report: ingesting.IngestReport, log_path: Path) -> None:
    if report.rebuilt_from is not None:
        console.print(
            f"[yellow]rebuilt[/] the index (was {describe_identity(report.rebuilt_from)})"
        )
    console.print(
        f"{report.listed} documents: {report.added} new, {report.changed} changed, "
        f"{report.unchanged} unchanged, {report.removed} removed, {len(report.skipped)} skipped; "
        f"{report.chunks_written} chunks embedded in {report.seconds:.1f} s; "
        f"{report.chunks_in_index} chunks in the index"
    )
    for skipped in report.skipped:
        console.print(f"  [yellow]skipped[/] {plain(skipped.key)}: {plain(skipped.reason)}")
    if report.skipped:
        console.print(f"  (also in {plain(log_path)})")


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _log_handler(path: Path) -> logging.Handler:
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)


def render_index_changes(console: Console, ws: Workspace) -> None:
    """The indexes' part of ``plan``: a rebuild when the embedding model changed."""
    if not ws.loaded.spec.indexes:
        return
    changes = plan_indexes(ws.loaded.spec, ws.desired, ws.spec_dir)
    if not changes:
        console.print("Indexes: no changes (their vectors are the spec's embedding models')")
        return
    console.print("Indexes (carried out by llmfleet ingest, once the services are applied):")
    for change in changes:
        colour = "yellow" if change.symbol == "-/+" else "green"
        console.print(
            f"  [{colour}]{change.symbol}[/] index {change.index}: {plain(change.reason)}"
        )
