"""Cutting a text into overlapping chunks; pure and deterministic.

The same text always gives the same chunks, so a re-run (or a run killed and
started again) writes the same rows. A chunk ends at the last paragraph break,
else line break, else space within its last fifth, so that words stay whole;
else at the last space (only a word longer than ``size`` is cut); the next one
starts ``overlap`` characters before that end, on a word.
"""

from __future__ import annotations

import re

_BREAKS = ("\n\n", "\n", " ")
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def normalise(text: str) -> str:
    """Runs of spaces as one, blank lines as one; leading and trailing space removed."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def chunk_text(text: str, *, size: int, overlap: int) -> list[str]:
    """``text`` in chunks of at most ``size`` characters, neighbours sharing ``overlap``."""
    text = normalise(text)
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = _end_of_chunk(text, start, size)
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        while start < end and not text[start - 1].isspace():
            start += 1  # begin on a word: the overlap may cut one in half
        if start >= end:
            start = end
    return chunks


def _end_of_chunk(text: str, start: int, size: int) -> int:
    end = start + size
    if end >= len(text):
        return len(text)
    floor = start + size * 4 // 5
    for mark in _BREAKS:
        cut = text.rfind(mark, floor, end)
        if cut > start:
            return cut + len(mark)
    cut = text.rfind(" ", start + 1, end)  # a shorter chunk rather than half a word
    return cut + 1 if cut > start else end  # one word longer than size: cut it
