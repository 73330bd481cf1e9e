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
from llmfleet.gateway.resume import EchoStripper, merge_usage, parse_chunk


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
        """The client's payload for one upstream payload, or None to drop it."""
        chunk = parse_chunk(payload)
        if chunk is None:
            return payload
        if "error" in chunk and not chunk.get("choices"):
            raise UpstreamChunkError(f"the engine sent an error event: {chunk['error']}")
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return None
        changed = self._track(chunk, choices[0])
        if usage and not self.include_usage:
            del chunk["usage"]
            changed = True
        if not changed:
            return payload
        return None if self._is_empty(choices[0]) else orjson.dumps(chunk)

    def _track(self, chunk: dict[str, Any], choice: dict[str, Any]) -> bool:
        """Record text, tokens and finish reason; fix a resumed chunk. True if changed."""
        if self.id is None:
            self.id, self.created, self.model = chunk.get("id"), chunk.get("created"), (
                chunk.get("model") or self.model
            )
        changed = False
        holder = choice.get("delta") if self.chat else choice
        if isinstance(holder, dict):
            changed = self._track_text(holder)
            if self.chat and holder.get("role"):
                if self._role_sent and self.resuming:
                    del holder["role"]
                    changed = True
                self._role_sent = True
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if self.resuming:
            chunk.update(id=self.id, created=self.created, model=self.model)
            changed = True
        return changed

    def _track_text(self, holder: dict[str, Any]) -> bool:
        key = "content" if self.chat else "text"
        content = holder.get(key)
        if not content or not isinstance(content, str):
            return False
        stripped = self._stripper.strip(content) if self._stripper else content
        if stripped:
            self.parts.append(stripped)
            self.tokens += 1
        if stripped is content:
            return False
        holder[key] = stripped
        return True

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

    def usage_chunk(self) -> bytes:
        """The final usage chunk for a client that asked ``stream_options.include_usage``."""
        body: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created, "model": self.model, "choices": [],
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
            "id": self.id, "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created, "model": self.model, "choices": [choice],
            "usage": self.client_usage(),
        }
