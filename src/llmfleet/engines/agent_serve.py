"""``python -m llmfleet.engines.agent_serve``: one agent replica's process.

It moves to the agent's working directory (``LLMFLEET_AGENT_WORKDIR``, set by
apply from ``working_dir:``) and then serves the ASGI app with uvicorn in this
process, or, with ``--exec``, becomes the agent's ``command:``. The local agent
supervises this process as it does an engine: SIGTERM ends it (uvicorn finishes
the requests in flight first).

The app is wrapped so that ``METRICS_PATH`` answers how many requests are in
flight (``RUNNING_SERIES``): draining a replica waits for that to read 0, as it
waits for an engine's running requests, instead of for its whole timeout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

WORKDIR_ENV = "LLMFLEET_AGENT_WORKDIR"
METRICS_PATH = "/llmfleet/metrics"
RUNNING_SERIES = "llmfleet_agent_requests_running"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def counting_requests(app: App) -> App:
    """``app`` with its HTTP requests in flight counted and served at ``METRICS_PATH``."""
    running = 0

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal running
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH:
            body = f"# TYPE {RUNNING_SERIES} gauge\n{RUNNING_SERIES} {running}\n".encode()
            head = [(b"content-type", b"text/plain; version=0.0.4")]
            await send({"type": "http.response.start", "status": 200, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return
        running += 1
        try:
            await app(scope, receive, send)
        finally:
            running -= 1

    return wrapped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmfleet-agent-serve")
    parser.add_argument("--app", help="package.module:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--exec", dest="command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    workdir = os.environ.get(WORKDIR_ENV)
    if workdir:
        os.chdir(workdir)
    if args.command:
        command = args.command[1:] if args.command[0] == "--" else args.command
        os.execvp(command[0], command)  # noqa: S606 - the agent's own command, from the spec
    if args.app is None or args.port is None:
        parser.error("--app and --port are needed without --exec")
    sys.path.insert(0, str(Path.cwd()))  # as `uvicorn` run from the working directory does
    import uvicorn
    from uvicorn.importer import import_from_string

    app = counting_requests(import_from_string(args.app))
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
