"""The answer one client gets, assembled from one or more upstream segments.

``StreamState`` turns each upstream SSE payload into the payload the client
gets (or None to drop it): unchanged bytes on the common path, a re-encoded
chunk only when a resumed segment needs its echo stripped or its id, created
and model set to the first response's. It also keeps what resume needs: the
text so far and how many tokens produced it. No I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmfleet.errors import TemporaryUpstreamError
from llmfleet.gateway.resume import EchoStripper, merge_usage, parse_chunk, with_cached_tokens


class UpstreamChunkError(TemporaryUpstreamError):
    """The upstream sent an error event in the middle of a stream."""


class StreamState:
    """Progress of one answer (choice 0) across segments."""

    def __init__(self, *, chat: bool, model: str, include_usage: bool) -> None:
        self.chat = chat
        self.model = model
        self.include_usage = include_usage
        self.id: str | None = None
        self.created: int | None = None
        self.parts: list[str] = []
        self.tokens = 0
        self.earlier_tokens = 0
        self.segments = 0
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        self._role_sent = False
        self._stripper: EchoStripper | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def begin_segment(self) -> None:
        """Start a new upstream attempt; a resumed one strips the echo of the text so far."""
        if self.segments > 0 and self.id is not None:
            self.earlier_tokens = self.tokens
            self._stripper = EchoStripper(self.text) if self.chat else None
        self.segments += 1
        self.usage = None

    @property
    def resuming(self) -> bool:
        return self.segments > 1 and self.id is not None

    def feed(self, payload: bytes) -> bytes | None:
        """The client's payload for one upstream payload, or None to drop it.

        This runs for every token of every streamed answer, so it is one flat method.
        """
        chunk = parse_chunk(payload)
        if chunk is None:
            return payload
        choices: Any = chunk.get("choices")
        if not self._track_usage(chunk, choices):
            return None
        choice = choices[0]
        changed = self._track(chunk, choice)
        usage = chunk.get("usage")
        if usage and not self.include_usage:
            del chunk["usage"]
            changed = True
        if not changed:
            return payload
        return None if self._is_empty(choice) else orjson.dumps(chunk)

    def absorb(self, payloads: list[bytes]) -> bool:
        """Track payloads nobody forwards (the client wants one JSON answer): the same
        record as ``feed``, parsed as one JSON array. True if any carried a choice."""
        try:
            chunks = orjson.loads(b"[" + b",".join(payloads) + b"]")
        except ValueError:  # one is not JSON: ``feed`` skips just that one
            carried = False
            for payload in payloads:
                carried = self.feed(payload) is not None or carried
            return carried
        if self.segments > 1:  # a continued answer: echoes to strip, the general path
            carried = False
            for chunk in chunks:
                if isinstance(chunk, dict):
                    choices: Any = chunk.get("choices")
                    if self._track_usage(chunk, choices):
                        self._track(chunk, choices[0])
                        carried = True
            return carried
        return self._absorb_first(chunks)

    def _absorb_first(self, chunks: list[Any]) -> bool:
        """``_track`` for the first segment (no echo to strip, nothing to rewrite),
        inlined: this loop runs for every token of every non-streamed answer."""
        chat, parts, tokens, carried = self.chat, self.parts, 0, False
        key = "content" if chat else "text"
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            choices: Any = chunk.get("choices")
            if not self._track_usage(chunk, choices):
                continue
            carried = True
            if self.id is None:
                self.id, self.created = chunk.get("id"), chunk.get("created")
                self.model = chunk.get("model") or self.model
            choice = choices[0]
            holder = choice.get("delta") if chat else choice
            if isinstance(holder, dict):
                content = holder.get(key)
                if content and isinstance(content, str):
                    parts.append(content)
                    tokens += 1
                if chat and holder.get("role"):
                    self._role_sent = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self.tokens += tokens
        return carried

    def _track_usage(self, chunk: dict[str, Any], choices: Any) -> bool:
        """Record a chunk's usage; raise on an error event. True if it has a choice."""
        usage = chunk.get("usage")
        if usage:
            self.usage = with_cached_tokens(usage, chunk.get("timings"))
        if choices:
            return True
        if "error" in chunk:
            raise UpstreamChunkError(f"the engine sent an error event: {chunk['error']}")
        return False

    def _track(self, chunk: dict[str, Any], choice: dict[str, Any]) -> bool:
        """Record text, tokens and finish reason; fix a resumed chunk. True if changed."""
        if self.id is None:
            self.id, self.created, self.model = (
                chunk.get("id"),
                chunk.get("created"),
                (chunk.get("model") or self.model),
            )
        resuming = self.segments > 1 and self.id is not None
        changed = False
        chat = self.chat
        holder = choice.get("delta") if chat else choice
        if isinstance(holder, dict):
            key = "content" if chat else "text"
            content = holder.get(key)
            if content and isinstance(content, str):
                stripped = self._stripper.strip(content) if self._stripper else content
                if stripped:
                    self.parts.append(stripped)
                    self.tokens += 1
                if stripped is not content:
                    holder[key] = stripped
                    changed = True
            if chat and holder.get("role"):
                if self._role_sent and resuming:
                    del holder["role"]
                    changed = True
                self._role_sent = True
        finish_reason = choice.get("finish_reason")
        if finish_reason:
            self.finish_reason = finish_reason
        if resuming:
            chunk.update(id=self.id, created=self.created, model=self.model)
            changed = True
        return changed

    def _is_empty(self, choice: dict[str, Any]) -> bool:
        """A resumed chunk left with nothing to say (all echo) is dropped."""
        if not self.resuming or choice.get("finish_reason"):
            return False
        holder = choice.get("delta") if self.chat else choice
        if not isinstance(holder, dict):
            return False
        key = "content" if self.chat else "text"
        return not holder.get(key) and not any(
            v for k, v in holder.items() if k not in (key, "role", "index", "logprobs")
        )

    def client_usage(self) -> dict[str, Any] | None:
        return merge_usage(self.usage, earlier_tokens=self.earlier_tokens, segments=self.segments)

    def produced_usage(self) -> dict[str, Any] | None:
        """The usage to charge and count: the engine's when it came, else the tokens
        received so far (a client that hung up, a stream cut short: the engine sends
        usage last, but did the work). Prompt tokens are then unknown, so not counted."""
        usage = self.client_usage()
        if usage is not None or not self.tokens:
            return usage
        return {"completion_tokens": self.tokens, "total_tokens": self.tokens}

    def usage_chunk(self) -> bytes:
        """The final usage chunk for a client that asked ``stream_options.include_usage``."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.client_usage(),
        }
        return orjson.dumps(body)

    def completion(self) -> dict[str, Any]:
        """The whole answer as a non-streaming response body."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": self.finish_reason, "logprobs": None}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": self.text}
        else:
            choice["text"] = self.text
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.client_usage(),
        }
