"""``llmfleet ask``: one streamed chat request through the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
from rich.console import Console

from llmfleet.errors import FleetError


def stream_answer(
    base_url: str,
    *,
    service: str,
    prompt: str,
    max_tokens: int,
    temperature: float,
    api_key: str | None,
    console: Console,
    unready_hint: str | None = None,
) -> None:
    """Stream the answer to the console; a gateway error becomes a FleetError (with
    ``unready_hint`` when the service has no ready replica)."""
    body = {
        "model": service,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.stream(
            "POST",
            f"{base_url}/v1/chat/completions",
            json=body,
            headers=headers,
            timeout=httpx.Timeout(300, connect=5),
        ) as response:
            if response.status_code != 200:
                code, message = _error(response)
                raise FleetError(
                    f"the gateway answered {response.status_code}: {message}",
                    hint=unready_hint
                    if code == "no_ready_replica" and unready_hint and unready_hint not in message
                    else None,
                )
            for text in _deltas(response):
                console.print(text, end="", highlight=False, markup=False)
    except httpx.TransportError as exc:
        raise FleetError(
            f"cannot reach the gateway at {base_url}: {exc}",
            hint="is the fleet applied? `llmfleet status`",
        ) from exc
    console.print()


def _error(response: httpx.Response) -> tuple[str | None, str]:
    """The OpenAI error's code and message (the body's start when it is not one)."""
    response.read()
    try:
        error = response.json()["error"]
        return error.get("code"), str(error["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, response.text[:200]


def _deltas(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices", []):
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield text
