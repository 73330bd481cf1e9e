"""Run the gateway as its own process (the local runtime starts it this way)::

    python -m llmfleet.gateway --environment ENV --host H --port P --agent-socket PATH \\
        [--state-url URL --state-base-dir DIR]

``--static-snapshot FILE`` (the agent's JSON answer in a file) replaces the
agent for benches and debugging. ``--kubernetes-config FILE`` (in a cluster)
replaces it with the EndpointSlices of the services that file names.

Prints ``llmfleet gateway listening on http://H:P`` once it serves. A port that
is taken is refused with a message and exit code 1. SIGTERM or SIGINT stops it
cleanly (exit 0), every answered request's log line written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from llmfleet.gateway.app import GatewayApp, create_app
from llmfleet.gateway.keys import KeyVerifier, StoreKeyVerifier
from llmfleet.gateway.replicas import AgentSource, ReplicaSource, StaticSource, snapshot_from_json

if TYPE_CHECKING:
    from llmfleet.observe.requests import RequestObserver

log = logging.getLogger("llmfleet.gateway")
CLOSE_GRACE_S = 60.0
"""how long answers in progress may take to finish once the gateway is told to stop."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llmfleet.gateway")
    parser.add_argument("--environment", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--agent-socket", help="unix socket of the local agent")
    source.add_argument(
        "--static-snapshot", help="JSON file in the agent's format (benches, debugging)"
    )
    source.add_argument(
        "--kubernetes-config",
        help="services.json of the gateway's ConfigMap: follow the services' EndpointSlices",
    )
    source.add_argument(
        "--dns-config",
        help="services.json naming each service's host: one replica per address it "
        "resolves to (a docker-compose file's gateway)",
    )
    parser.add_argument(
        "--kubernetes-api",
        help="API server URL without credentials (kubectl proxy; default: the pod's own "
        "service account)",
    )
    parser.add_argument(
        "--state-url",
        # The agent passes it in the environment: a URL may carry a password, argv is public.
        default=os.environ.get("LLMFLEET_STATE_URL"),
        help="state store holding the API keys (default: $LLMFLEET_STATE_URL)",
    )
    parser.add_argument("--state-base-dir", help="directory relative sqlite paths start from")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or exit 1 with a message if the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc}"
        print(
            f"error: the gateway port {host}:{port} {reason}; "
            "stop the program using it or set gateway.port in fleet.yaml",
            file=sys.stderr,
        )
        raise SystemExit(1) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def key_verifier(args: argparse.Namespace) -> KeyVerifier | None:
    """The state store's keys, if a state URL was given."""
    if not args.state_url:
        return None
    from llmfleet.state.store import StateStore  # type: ignore[import-not-found,unused-ignore]

    base_dir = Path(args.state_base_dir) if args.state_base_dir else Path.cwd()
    store = StateStore.open(args.state_url, base_dir=base_dir)
    return StoreKeyVerifier(store, clock=asyncio.get_running_loop().time)


def replica_source(args: argparse.Namespace) -> ReplicaSource:
    if args.static_snapshot:
        body = json.loads(Path(args.static_snapshot).read_text())
        return StaticSource(snapshot_from_json(body))
    if args.dns_config:
        from llmfleet.gateway.discovery import load_cluster_services
        from llmfleet.gateway.dns_discovery import DnsSource

        try:
            named = load_cluster_services(Path(args.dns_config))
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {args.dns_config}: {exc}", file=sys.stderr)
            raise SystemExit(1) from exc
        return DnsSource(named)
    if args.kubernetes_config:
        from llmfleet.gateway.discovery import (
            ApiServer,
            EndpointSliceSource,
            load_cluster_services,
        )

        try:
            cluster = load_cluster_services(Path(args.kubernetes_config))
            api = ApiServer(args.kubernetes_api) if args.kubernetes_api else ApiServer.in_cluster()
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {args.kubernetes_config}: {exc}", file=sys.stderr)
            raise SystemExit(1) from exc
        return EndpointSliceSource(cluster, api)
    return AgentSource(args.agent_socket, args.environment)


def request_observer(environment: str, clock: Callable[[], float]) -> RequestObserver | None:
    """Tracing and request logs as the agent's environment variables ask; None when both
    are off (then OpenTelemetry is not even imported)."""
    if os.environ.get("LLMFLEET_REQUEST_LOGS") != "1" and not os.environ.get(
        "LLMFLEET_OTLP_ENDPOINT"
    ):
        return None
    from llmfleet.observe.requests import RequestObserver

    return RequestObserver.from_env(os.environ, environment=environment, clock=clock)


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off the hot path.

    What exists after start-up (modules, the spec, the metric registry) lives as
    long as the process: ``gc.freeze`` takes it out of every later collection.
    A request allocates a few dozen containers, nearly all freed by reference
    counting, so the youngest generation's threshold of 700 ran a collection
    every dozen requests, each scanning the requests in flight: about 6.6 µs of
    CPU per request at concurrency 32 (``gc.callbacks``, 21,000 requests). Ten
    times the threshold runs a tenth as many collections of about the same size.
    """
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0 * 10, gen1, gen2)


async def serve(args: argparse.Namespace, sock: socket.socket, source: ReplicaSource) -> None:
    loop = asyncio.get_running_loop()
    app = create_app(source, key_verifier=key_verifier(args), clock=loop.time)
    observer = request_observer(args.environment, loop.time)
    app.gateway.observe = observer
    await app.serve(sock=sock)
    settle_garbage_collector()
    print(f"llmfleet gateway listening on http://{args.host}:{args.port}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await close(app, observer)


async def close(app: GatewayApp, observer: RequestObserver | None) -> None:
    """Stop on SIGTERM (how the agent stops a gateway) as on Ctrl-C: write the request
    lines held so far at once (a SIGKILL may follow the grace), let the answers in
    progress finish, then write theirs and send the spans."""
    if observer is not None and observer.lines is not None:
        observer.lines.flush()
    try:
        await app.close(grace_s=CLOSE_GRACE_S)
    finally:
        if observer is not None:
            observer.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from llmfleet.observe.logs import configure_logging

    configure_logging(service_name="llmfleet-gateway", level=args.log_level)
    sock = bind(args.host, args.port)
    source = replica_source(args)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency outside Windows
            asyncio.run(serve(args, sock, source))
        else:
            uvloop.run(serve(args, sock, source))


if __name__ == "__main__":
    main()
