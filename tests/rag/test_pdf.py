"""PDF documents: text taken page by page with pypdf; a corrupt, password-locked or
text-less PDF is skipped with its reason and the run goes on. The PDFs are written
by the test (pypdf's writer, one Helvetica text line a page): no binary is kept."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.extract import UnreadableError, extract_text
from llmfleet.rag.index import VectorIndex
from llmfleet.rag.ingest import Ingestion
from llmfleet.rag.sources import FolderSource
from llmfleet.spec.rag import PipelineSpec
from tests.fixtures.engines import REAL_TIMEOUT_S


def make_pdf(pages: list[str], *, password: str | None = None, owner_only: bool = False) -> bytes:
    """A PDF with one line of text on each page; encrypted when ``password`` is given
    (AES-256; ``owner_only``: opening needs no password, as for a copy-protected file)."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for text in pages:
        page = writer.add_blank_page(612, 792)
        content = DecodedStreamObject()
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        content.set_data(f"BT /F1 12 Tf 72 712 Td ({escaped}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(content)
        fonts = DictionaryObject({NameObject("/F1"): font_ref})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    if password is not None:
        user = "" if owner_only else password
        writer.encrypt(user_password=user, owner_password=password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_each_page_is_read_in_order() -> None:
    data = make_pdf(["Rollback restores a revision.", "Quotas limit tokens per minute."])
    assert extract_text("guide.PDF", data) == (
        "Rollback restores a revision.\n\nQuotas limit tokens per minute."
    )


def test_a_pdf_locked_only_against_changes_is_read() -> None:
    data = make_pdf(["Copy-protected but readable."], password="owner", owner_only=True)
    assert extract_text("locked.pdf", data) == "Copy-protected but readable."


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (make_pdf(["secret"], password="hunter2"), "encrypted PDF: it needs a password"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog", "not a readable PDF: "),
        (make_pdf(["cut short"])[:300], "not a readable PDF: "),
        (b"plain bytes with a .pdf name", "not a readable PDF: "),
        (make_pdf([""]), "no text in its 1 pages (scanned images need OCR)"),
    ],
    ids=["password", "corrupt", "truncated", "not-a-pdf", "no-text"],
)
def test_an_unreadable_pdf_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableError) as caught:
        extract_text("bad.pdf", data)
    assert caught.value.reason.startswith(reason)


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_a_pipeline_reads_pdfs_and_goes_on_past_bad_ones(
    embedding_url: str, tmp_path: Path
) -> None:
    """With the default globs, a PDF's pages are chunked and found by a question; the
    corrupt and the locked PDF are skipped with their reasons while the other documents
    are ingested."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.pdf").write_bytes(
        make_pdf(["Rollback restores a recorded revision.", "A key may use 500 tokens a minute."])
    )
    (folder / "broken.pdf").write_bytes(make_pdf(["cut short"])[:300])
    (folder / "locked.pdf").write_bytes(make_pdf(["secret"], password="hunter2"))
    (folder / "notes.md").write_text("# Notes\n\nThe gateway retries on another replica.")
    pipeline = PipelineSpec(source=str(folder), index="docs")
    embedder = EmbeddingClient(embedding_url, model="embed", dimension=384)
    try:
        report = Ingestion(
            name="docs",
            pipeline=pipeline,
            source=FolderSource(folder),
            index=VectorIndex.open(str(tmp_path / "index"), dimension=384),
            embedder=embedder,
            model_identity='{"model": "minilm"}',
        ).run()
        (question,) = embedder.embed(["How many tokens may a key use?"])
    finally:
        embedder.close()
    assert (report.listed, report.added) == (4, 2)
    reasons = {s.key: s.reason for s in report.skipped}
    assert reasons["broken.pdf"].startswith("not a readable PDF")
    assert reasons["locked.pdf"].startswith("encrypted PDF: it needs a password")
    index = VectorIndex.open(str(tmp_path / "index"), dimension=384)
    texts = [r["text"] for r in index.chunk_rows() if r["key"] == "guide.pdf"]
    assert texts == ["Rollback restores a recorded revision.\n\nA key may use 500 tokens a minute."]
    assert index.search(question, k=1)[0].key == "guide.pdf"
