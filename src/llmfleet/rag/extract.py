"""Plain text out of a document's bytes, by its name: text, Markdown, HTML; pure.

Markdown is kept as written (its headings and lists read well to an embedding
model and to a person shown the chunk). HTML goes through BeautifulSoup with
Python's own parser; scripts, styles and templates are dropped.
"""

from __future__ import annotations

from pathlib import PurePosixPath

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ""})
HTML_SUFFIXES = frozenset({".html", ".htm"})
_INVISIBLE = ("script", "style", "template", "noscript")


class UnreadableError(Exception):
    """A document that cannot be turned into text; ``reason`` goes in the log and report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def extract_text(key: str, data: bytes) -> str:
    """The document's text; ``Unreadable`` says why there is none."""
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES:
        raise UnreadableError(f"no reader for '{suffix}' files (text, Markdown and HTML are read)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableError(f"not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise UnreadableError("binary content (NUL bytes)")
    return _html_text(text) if suffix in HTML_SUFFIXES else text


def _html_text(markup: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(_INVISIBLE):
        tag.decompose()
    return soup.get_text("\n")
