"""Pure parts of ingestion: chunking, include/exclude globs, text extraction, the plan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmfleet.rag.chunking import chunk_text, normalise
from llmfleet.rag.extract import UnreadableError, extract_text
from llmfleet.rag.planning import plan_index
from llmfleet.rag.sources import matches

words = st.lists(st.text("abcdefghij", min_size=1, max_size=12), min_size=0, max_size=300)


@given(words, st.integers(50, 400), st.integers(0, 49))
def test_chunks_are_bounded_deterministic_and_lose_no_word(
    parts: list[str], size: int, overlap: int
) -> None:
    """Every chunk is at most ``size`` characters, the same text gives the same chunks,
    and every word of the text is in some chunk, whole."""
    text = " ".join(parts)
    chunks = chunk_text(text, size=size, overlap=overlap)
    assert chunks == chunk_text(text, size=size, overlap=overlap)
    assert all(0 < len(c) <= size for c in chunks)
    inside = {w for c in chunks for w in c.split()}
    assert set(normalise(text).split()) <= inside


def test_neighbours_share_the_overlap() -> None:
    text = " ".join(f"w{n:03}" for n in range(200))
    first, second, *_ = chunk_text(text, size=100, overlap=30)
    shared = first[first.index(second.split()[0]) :]
    assert second.startswith(shared)
    assert 20 <= len(shared) <= 30  # the overlap, less the part of a word it began in


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("README.md", True),
        ("docs/guide/intro.md", True),
        ("docs/drafts/wip.md", False),
        ("docs/page.html", True),
        ("image.png", False),
        ("notes.md.bak", False),
    ],
)
def test_globs(key: str, expected: bool) -> None:
    """'**/' is any number of folders, none included; '*' stays within one folder."""
    assert matches(key, ("**/*.md", "docs/*.html"), ("**/drafts/**",)) is expected


def test_html_loses_markup_scripts_and_styles() -> None:
    page = b"<html><style>p{}</style><body><h1>Roll back</h1><script>x()</script><p>One step.</p>"
    assert extract_text("a.html", page).split() == ["Roll", "back", "One", "step."]


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        ("a.docx", b"PK\x03\x04", "no reader for '.docx' files"),
        ("a.pdf", b"%PDF", "not a readable PDF"),
        ("a.md", b"\xff\xfe", "not UTF-8 text"),
        ("a.txt", b"a\x00b", "binary content"),
    ],
)
def test_unreadable_documents_say_why(key: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableError, match=reason):
        extract_text(key, data)


def test_plan_index() -> None:
    """Nothing when the recorded model is the spec's; '+' for an index never filled;
    '-/+' rebuild, naming both models, when the model changed."""
    old = '{"source": "pypi:a==1/m", "dimension": 384}'
    new = '{"source": "pypi:a==2/m", "dimension": 384}'
    assert plan_index("docs", desired=old, recorded=old, pipelines=("docs",)) is None
    fresh = plan_index("docs", desired=old, recorded=None, pipelines=("docs",))
    assert fresh is not None and fresh.symbol == "+"
    change = plan_index("docs", desired=new, recorded=old, pipelines=("docs",))
    assert change is not None and change.symbol == "-/+"
    assert "pypi:a==1/m (384 dimensions) -> pypi:a==2/m (384 dimensions)" in change.reason
