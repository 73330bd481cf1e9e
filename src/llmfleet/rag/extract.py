"""Plain text out of a document's bytes, by its name: text, Markdown, HTML, PDF; pure.

Markdown is kept as written (its headings and lists read well to an embedding
model and to a person shown the chunk). HTML goes through BeautifulSoup with
Python's own parser; scripts, styles and templates are dropped. PDF goes
through pypdf page by page (pages joined by a blank line); a PDF that is
corrupt, locked by a password, or holds no text (scanned images) is unreadable,
with the reason.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ""})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIX = ".pdf"
_INVISIBLE = ("script", "style", "template", "noscript")


class UnreadableError(Exception):
    """A document that cannot be turned into text; ``reason`` goes in the log and report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def extract_text(key: str, data: bytes) -> str:
    """The document's text; ``Unreadable`` says why there is none."""
    suffix = PurePosixPath(key).suffix.lower()
    if suffix == PDF_SUFFIX:
        return pdf_text(data)
    if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES:
        raise UnreadableError(
            f"no reader for '{suffix}' files (text, Markdown, HTML and PDF are read)"
        )
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


def pdf_text(data: bytes) -> str:
    """The text of each page, in order, pages joined by a blank line."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableError("encrypted PDF: it needs a password to be read")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise UnreadableError(f"encrypted PDF that cannot be opened: {exc}") from None
    except Exception as exc:
        # pypdf's own errors, and whatever a malformed object tree makes a parser raise
        # (IndexError, zlib.error, RecursionError...): one bad document never ends the run
        raise UnreadableError(f"not a readable PDF: {type(exc).__name__}: {exc}") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise UnreadableError(f"no text in its {len(pages)} pages (scanned images need OCR)")
    return text
