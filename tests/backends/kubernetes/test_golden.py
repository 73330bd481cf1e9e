"""The rendered manifests of every example, compared with files reviewed like code.

After an intended change: ``LLMFLEET_UPDATE_GOLDEN=1 pytest tests/backends/kubernetes``
rewrites them; the diff of golden/ is then part of the change's review.
"""

from __future__ import annotations

import os

import pytest

from llmfleet.backends.kubernetes.documents import to_yaml_stream
from tests.backends.kubernetes.cases import CASE_IDS, CASES, HERE, render

GOLDEN = HERE / "golden"


@pytest.mark.parametrize(("spec", "env"), CASES, ids=CASE_IDS)
def test_manifests_match_the_reviewed_golden_files(spec: str, env: str) -> None:
    text = to_yaml_stream(render(spec, env))
    path = GOLDEN / f"{spec}-{env}.yaml"
    if os.environ.get("LLMFLEET_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"no golden file {path.name}; run with LLMFLEET_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{path.name} differs; review, then update as the docstring says"
    )


def test_rendering_is_deterministic_and_writes_no_alias() -> None:
    first, second = (to_yaml_stream(render("init", "production")) for _ in range(2))
    assert first == second
    assert "&id" not in first and "*id" not in first
