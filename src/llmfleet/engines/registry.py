"""Engine kind -> adapter. The one place that knows every engine.

The simulator's adapter is imported lazily: it lives in its own package and
pulls in the simulator only when a sim service is actually used.
"""

from __future__ import annotations

import difflib

from llmfleet.engines.base import EngineAdapter
from llmfleet.errors import EngineError
from llmfleet.spec.model import EngineKind


def known_engines() -> list[str]:
    """Every engine kind a spec may name, sorted."""
    return sorted(kind.value for kind in EngineKind)


def get_adapter(kind: EngineKind | str) -> EngineAdapter:
    """A fresh adapter for ``kind``; ``EngineError`` with a did-you-mean for unknown kinds."""
    name = kind.value if isinstance(kind, EngineKind) else str(kind).strip().lower()
    if name == EngineKind.LLAMACPP:
        from llmfleet.engines.llamacpp import LlamaCppAdapter

        return LlamaCppAdapter()
    if name == EngineKind.VLLM:
        from llmfleet.engines.vllm import VllmAdapter

        return VllmAdapter()
    if name == EngineKind.SIM:
        from llmfleet.engines.sim.adapter import SimAdapter

        adapter: EngineAdapter = SimAdapter()
        return adapter
    if name == EngineKind.AGENT:
        from llmfleet.engines.agent import AgentAdapter

        return AgentAdapter()
    raise _unknown(str(kind))


def _unknown(name: str) -> EngineError:
    close = difflib.get_close_matches(name.lower(), known_engines(), n=1, cutoff=0.5)
    guess = f"; did you mean '{close[0]}'?" if close else ""
    return EngineError(
        f"unknown engine kind '{name}'{guess}",
        hint=f"known engines: {', '.join(known_engines())}",
    )
