"""What a service's engine, as the spec starts it, can answer; pure.

Embeddings and tool calls are the two things an engine may not do.

The gateway refuses a request that the service's engine is known not to serve
(embeddings from a llama-server started without ``--embeddings``) before any
replica sees it: the client gets 400 naming the services that do serve it,
instead of an engine's 501 that looks like a replica fault. Known means the
spec says so; where only the engine knows (vLLM picks its task from the model
unless ``--task``/``--runner`` says), the request goes upstream and the
engine's own refusal is passed on.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmfleet.spec.model import EngineKind, ServiceSpec

LLAMACPP_EMBEDDING_FLAGS = frozenset({"--embedding", "--embeddings", "--rerank", "--reranking"})
"""llama-server flags that turn its embeddings endpoint on (reranking implies it)."""
TRUE_WORDS = frozenset({"1", "true", "on", "yes", "enabled"})
"""How llama.cpp reads a boolean ``LLAMA_ARG_*`` environment variable as true."""
VLLM_GENERATE_TASKS = frozenset({"generate", "transcription", "draft"})
"""vLLM tasks and runners that serve no embeddings."""


def why_no_embeddings(spec: ServiceSpec) -> str | None:
    """Why the service's engine does not serve ``/v1/embeddings``, or None when it does
    or may (the engine decides)."""
    kind, args = spec.engine.kind, spec.engine.args
    if kind == EngineKind.LLAMACPP:
        env = spec.engine.env.get("LLAMA_ARG_EMBEDDINGS", "").lower()
        if LLAMACPP_EMBEDDING_FLAGS.intersection(args) or env in TRUE_WORDS:
            return None
        return "its llama-server runs without --embeddings; add it to engine.args to serve them"
    if kind == EngineKind.VLLM:
        task = _option(args, "--runner") or _option(args, "--task")
        if task in VLLM_GENERATE_TASKS:
            return f"its vLLM runs with the task '{task}'; --task embed serves embeddings"
    return None


TOOL_FIELDS = ("tools", "functions")
"""Request fields that ask for tool (function) calls."""


def why_no_tools(spec: ServiceSpec) -> str | None:
    """Why the service's engine cannot call tools, or None when it can or may (its chat
    template decides: llama-server with ``--jinja``, vLLM with a tool parser)."""
    if spec.engine.kind == EngineKind.SIM:
        return "the sim engine answers in prose and never calls a tool"
    return None


def _option(args: Sequence[str], name: str) -> str | None:
    """The last value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value
