"""``python -m llmfleet.engines.sim``: run one sim engine process.

argparse rather than typer on purpose: this is an engine process started by a
backend with a fixed argv, not the user-facing CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import web

from llmfleet.engines.sim.adapter import API_KEY_ENV
from llmfleet.engines.sim.faults import Faults
from llmfleet.engines.sim.runtime import SimConfig
from llmfleet.engines.sim.server import create_app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmfleet.engines.sim",
        description="A simulated LLM engine speaking the OpenAI API.",
    )
    add = parser.add_argument
    add("--port", type=int, required=True)
    add("--host", default="127.0.0.1")
    add("--allow-remote", action="store_true", help="allow a non-loopback --host")
    add("--model-name", default="sim")
    add("--version", default="1.2.0", help="the sim version this process pretends to be")
    add("--slots", type=int, default=4, help="concurrent sequences; more requests queue")
    add("--context", type=int, default=2048, help="context size in tokens")
    add("--ttft", type=float, default=0.02, help="base time to first token, seconds")
    add("--tps", type=float, default=200.0, help="decode tokens/s per sequence; 0 = instant")
    add("--prefill-tps", type=float, default=0.0, help="prompt tokens/s; 0 = instant")
    add("--output-tokens", type=int, default=None, help="fix the natural answer length")
    add("--echo-prefill", action=argparse.BooleanOptionalAction, default=True)
    add("--embedding-dim", type=int, default=64)
    add("--seed", type=int, default=0, help="seeds --error-rate")
    _add_fault_flags(parser)
    return parser


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults (also settable live: POST /sim/faults)")
    add = faults.add_argument
    add("--crash-after-tokens", type=int, default=None, help="exit 1 after N tokens in all")
    add("--hang-after-tokens", type=int, default=None, help="stall all streams after N tokens")
    add("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    add("--load-time", type=float, default=0.0, help="seconds /health answers 503 at start")
    add("--fail-start", action="store_true", help="exit 1 at once (tests crash loops)")
    add(
        "--fail-start-signal",
        default=None,
        metavar="NAME",
        help="die at once by this signal, e.g. ILL (a binary built for another CPU)",
    )


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, Faults]:
    """The process settings and the initial faults named by the command line."""
    config = SimConfig(
        model_name=args.model_name,
        version=args.version,
        slots=args.slots,
        context=args.context,
        ttft=args.ttft,
        tps=args.tps,
        prefill_tps=args.prefill_tps,
        output_tokens=args.output_tokens,
        echo_prefill=args.echo_prefill,
        seed=args.seed,
        embedding_dim=args.embedding_dim,
    )
    faults = Faults(
        crash_after_tokens=args.crash_after_tokens,
        hang_after_tokens=args.hang_after_tokens,
        error_rate=args.error_rate,
        load_time=args.load_time,
    )
    return config, faults


def check_args(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot be served, or None."""
    if args.slots < 1:
        return f"--slots must be >= 1, got {args.slots}"
    if not 0 <= args.error_rate <= 1:
        return f"--error-rate must be between 0 and 1, got {args.error_rate}"
    if not args.allow_remote and not _is_loopback(args.host):
        return f"refusing to listen on {args.host}: pass --allow-remote to serve beyond loopback"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(
    config: SimConfig, faults: Faults, *, host: str, port: int, api_key: str | None = None
) -> None:
    """Serve until cancelled. Handler cancellation is on so a client that leaves
    mid-stream (even a hung one) frees its slot at once."""
    app = create_app(config, faults, api_key=api_key)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    print(f"sim engine listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = check_args(args)
    if problem is None and args.fail_start_signal:
        _die_by_signal(args.fail_start_signal)
    if problem is None and args.fail_start:
        problem = "failing at start on purpose (--fail-start)"
    if problem is not None:
        print(f"sim engine: {problem}", file=sys.stderr)
        return 1
    config, faults = config_from_args(args)
    # from the environment, never a flag: any local user can read a process's argv
    api_key = os.environ.get(API_KEY_ENV) or None
    try:
        _run(serve(config, faults, host=args.host, port=args.port, api_key=api_key))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sim engine: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _die_by_signal(name: str) -> None:
    """Kill this process by ``name`` with its default action, as a faulting binary dies."""
    sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (it is, except on Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
