"""What the docs assistant builds from what it retrieved: the prompt and the citations; pure.

A citation names a source document and quotes its line nearest to the question (by
the same embedding model that found the chunk), so an answer stays checkable
however small the chat model is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INSTRUCTIONS = (
    "You answer questions about llmfleet from the excerpts of its documentation below. "
    "Use only what they say; if they do not answer the question, say so. Be brief."
)
MAX_LINES_PER_SOURCE = 12
MIN_LINE_CHARS = 20
_DECORATION = re.compile(r"[\u2500-\u257f|#>*`]+")  # box drawing, table bars, Markdown marks


@dataclass(frozen=True, slots=True)
class Source:
    """One retrieved chunk, and its line nearest to the question once quoted."""

    document: str
    distance: float
    text: str
    quote: str = ""

    def to_json(self, *, index: str) -> dict[str, Any]:
        """As the agent contract has it (``validate.answers``): a ``file_search`` result,
        ``score`` the cosine similarity."""
        attributes = {"index": index, "distance": self.distance, "quote": self.quote}
        score = round(1.0 - self.distance, 4)
        return {
            "filename": self.document,
            "score": score,
            "text": self.text,
            "attributes": attributes,
        }


def build_messages(conversation: Sequence[dict[str, Any]], sources: Sequence[Source]) -> list[Any]:
    """The chat request's messages: instructions and numbered excerpts as the system
    message, then the client's conversation (its own system messages left out)."""
    excerpts = "\n\n".join(f"[{n}] ({s.document})\n{s.text}" for n, s in enumerate(sources, 1))
    system = {"role": "system", "content": f"{INSTRUCTIONS}\n\n{excerpts}"}
    return [system, *(m for m in conversation if m.get("role") != "system")]


def candidate_lines(text: str) -> list[str]:
    """A chunk's lines worth quoting: decoration removed, long enough, not a command's
    synopsis (``Usage: ...`` says less than the line after it), the first few."""
    lines = (" ".join(_DECORATION.sub(" ", line).split()) for line in text.splitlines())
    quotable = (line for line in lines if len(line) >= MIN_LINE_CHARS)
    return [line for line in quotable if not line.startswith("Usage:")][:MAX_LINES_PER_SOURCE]


def nearest(
    question: Sequence[float], lines: Sequence[str], vectors: Sequence[Sequence[float]]
) -> str:
    """The line whose vector is nearest (cosine) to the question's; "" when none."""
    best, best_score = "", -2.0
    for line, vector in zip(lines, vectors, strict=True):
        score = _cosine(question, vector)
        if score > best_score:
            best, best_score = line, score
    return best


def citations(sources: Sequence[Source]) -> str:
    """``Sources:`` then one numbered line per document (its nearest chunk's quote)."""
    first: dict[str, Source] = {}
    for source in sources:
        first.setdefault(source.document, source)
    if not first:
        return "Sources: none found in the index"
    lines = [
        f"[{n}] {s.document}" + (f': "{s.quote}"' if s.quote else "")
        for n, s in enumerate(first.values(), 1)
    ]
    return "Sources:\n" + "\n".join(lines)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0
