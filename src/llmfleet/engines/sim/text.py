"""Deterministic text for the sim engine; pure.

An answer is a pure function of the conversation and the seed, so a test (or
the gateway's stream resume) can predict it exactly: token ``i`` of an answer
is a word picked by hashing the conversation key and ``i``. Every token is one
vocabulary word with a leading space, so text splits back into tokens on
whitespace, which is what lets a prefilled assistant message be matched
against the sequence and continued where it stops.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

# fmt: off
_HEADS = ("lo", "ip", "do", "si", "am", "co", "se", "ad",
          "el", "te", "in", "ut", "la", "ma", "al", "qu")
_TAILS = ("rem", "sum", "lor", "tor", "met", "nec", "tur", "pis",
          "lit", "mpor", "cid", "bor", "ore", "gna", "iqua", "ent")
# fmt: on
VOCABULARY: tuple[str, ...] = tuple(" " + head + tail for head in _HEADS for tail in _TAILS)
"""256 distinct words, one per hash byte; each already carries its leading space."""
_IN_VOCABULARY = frozenset(VOCABULARY)

_BLOCK = 64  # tokens per blake2b digest: one byte picks one of 256 words
MIN_NATURAL_TOKENS = 16
MAX_NATURAL_TOKENS = 48


def conversation_key(parts: Iterable[str], seed: int | None) -> bytes:
    """A 32-byte key naming one conversation and seed; the root of its answer.

    Parts are joined with separators that cannot appear by accident, so
    ("ab", "c") and ("a", "bc") give different keys.
    """
    digest = hashlib.blake2b(digest_size=32)
    digest.update(b"seed\x1f%d\x1e" % (seed or 0))
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.digest()


def prompt_key(prompt: str, seed: int | None) -> bytes:
    """The key of a completions prompt (kept apart from any chat conversation)."""
    return conversation_key((f"prompt\x1f{prompt}",), seed)


def split_continuation(prompt: str, seed: int | None, *, limit: int = 4096) -> tuple[str, str]:
    """Split a completions prompt into (original prompt, answer tokens appended to it).

    The gateway resumes a completion by appending the text produced so far to
    the prompt; this finds that text so the answer continues instead of
    starting over. Only prompts ending in vocabulary tokens pay for the search,
    and the longest genuine continuation (checked by regenerating it) wins.
    """
    bases = [prompt]
    while len(bases) <= limit:
        tail = bases[-1].rsplit(" ", 1)
        if len(tail) != 2 or " " + tail[1] not in _IN_VOCABULARY:
            break
        bases.append(tail[0])
    for count in range(len(bases) - 1, 0, -1):
        base = bases[count]
        appended = prompt[len(base) :]
        if "".join(answer_tokens(prompt_key(base, seed), 0, count)) == appended:
            return base, appended
    return prompt, ""


def natural_length(key: bytes) -> int:
    """How many tokens the answer to ``key`` has when nothing caps it."""
    span = MAX_NATURAL_TOKENS - MIN_NATURAL_TOKENS + 1
    return MIN_NATURAL_TOKENS + key[0] % span


def answer_tokens(key: bytes, start: int, stop: int) -> list[str]:
    """Tokens ``start`` (inclusive) to ``stop`` (exclusive) of the answer to ``key``."""
    tokens: list[str] = []
    if stop <= start:
        return tokens
    first_block, last_block = start // _BLOCK, (stop - 1) // _BLOCK
    for block in range(first_block, last_block + 1):
        seed = key + block.to_bytes(4, "little")
        picks = hashlib.blake2b(seed, digest_size=_BLOCK).digest()
        lo = max(start - block * _BLOCK, 0)
        hi = min(stop - block * _BLOCK, _BLOCK)
        tokens.extend(VOCABULARY[pick] for pick in picks[lo:hi])
    return tokens


def covered_tokens(key: bytes, prefill: str) -> int:
    """How many whole leading tokens of the answer to ``key`` the prefill repeats.

    Matching is by words, so a prefill whose whitespace was normalised (leading
    space stripped, say) still counts; the first word that differs ends it.
    """
    words = prefill.split()
    if not words:
        return 0
    expected = answer_tokens(key, 0, len(words))
    covered = 0
    for word, token in zip(words, expected, strict=True):
        if token[1:] != word:
            break
        covered += 1
    return covered


def count_words(texts: Iterable[str]) -> int:
    """Prompt tokens as the sim counts them: whitespace-separated words."""
    return sum(len(text.split()) for text in texts)


def embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text``: equal texts, equal vectors."""
    raw = bytearray()
    block = 0
    while len(raw) < dim:
        seed = text.encode("utf-8", "surrogatepass") + block.to_bytes(4, "little")
        raw += hashlib.blake2b(seed, digest_size=64).digest()
        block += 1
    values = [byte - 127.5 for byte in raw[:dim]]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]
