"""The sim's prefix cache: which prompt prefixes were already prefilled.

Like vLLM's automatic prefix caching, prompts are cut into blocks of words and
each block is named by a hash chained over all blocks before it, so a block
hits only when the whole prefix up to it matches. A second request sharing a
long prefix pays prefill time only for its uncached suffix, which is what makes
prefix-affinity routing measurable on sim replicas.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

BLOCK_WORDS = 16


class PrefixCache:
    """A bounded LRU of prefix block hashes. Not thread-safe; one per event loop."""

    def __init__(self, *, capacity_blocks: int = 16384) -> None:
        self._capacity = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def admit(self, words: Sequence[str]) -> int:
        """Record the prompt ``words``; return how many leading words were cached."""
        cached = 0
        still_hitting = True
        chained = 0
        for start in range(0, len(words) - BLOCK_WORDS + 1, BLOCK_WORDS):
            chained = hash((chained, *words[start : start + BLOCK_WORDS]))
            if still_hitting and chained in self._blocks:
                self._blocks.move_to_end(chained)
                cached += BLOCK_WORDS
                continue
            still_hitting = False
            self._insert(chained)
        return cached

    def _insert(self, block: int) -> None:
        self._blocks[block] = None
        if len(self._blocks) > self._capacity:
            self._blocks.popitem(last=False)
