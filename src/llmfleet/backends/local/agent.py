"""The local agent: a long-lived process that supervises replicas and gateways.

``apply`` starts it when it is not running; it outlives the CLI. It listens on a
unix socket in the project's home (only this user can reach it) and keeps its
table in ``agent-state.json`` so that, restarted after a crash, it adopts the
replicas still running instead of starting them twice. It runs with umask 077, so
what it and its replicas write is this user's only, and refuses a home or table
another user could have written (``llmfleet.private_files``).

HTTP API (JSON):
    GET    /v1/agent                          pid, home, generation
    GET    /v1/replicas[?environment=E]       ReplicaStatus list, and the failed ones
    POST   /v1/replicas                       start a ReplicaSpec -> ReplicaStatus
    POST   /v1/replicas/{id}/stop             drain then stop {"drain_timeout_s": s}
    GET    /v1/replicas/{id}/logs?lines=N     last lines of its output
    GET    /v1/environments/{env}             services, replicas, failed (long-poll)
    PUT    /v1/environments/{env}             set the services config the gateway routes by
    DELETE /v1/environments/{env}             forget it
    GET    /v1/gateways                       gateway statuses
    PUT    /v1/gateways/{env}                 run the environment's gateway
    DELETE /v1/gateways/{env}                 stop it
    POST   /v1/shutdown                       stop everything and exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
from aiohttp import web

from llmfleet.backends.base import ReplicaSpec
from llmfleet.backends.local import ports
from llmfleet.backends.local.failed import FailedReplicas
from llmfleet.backends.local.gateways import gateway_spec
from llmfleet.backends.local.gpus import assign_gpus, wanted_gpus
from llmfleet.backends.local.layout import AGENT_LOCK_NAME, LOGS_FOLDER, SOCKET_NAME, STATE_NAME
from llmfleet.backends.local.port_holders import port_holder
from llmfleet.backends.local.supervisor import Managed, Supervisor, log_limits_from_env
from llmfleet.backends.local.table import TableKeeper, read_table
from llmfleet.backends.local.wire import spec_from_json, spec_to_json
from llmfleet.engines.gpus import visible_gpus
from llmfleet.errors import GpuShortageError, UnsafePathError
from llmfleet.observe.local import attach_observer
from llmfleet.observe.process_env import gateway_env
from llmfleet.private_files import check_private, open_private, private_folder

log = logging.getLogger(__name__)

STOP_STEP_S = 15.0
"""The most a step of the shutdown may take beyond its drain (stopping the replicas:
each gets its process grace, 5 s, and its supervision's end, 5 s). Gateways, replicas,
the upgrade ticker (its build's grace is 10 s), the observer and aiohttp's 5 s: 70 s at
worst, inside the 90 s that ``LocalBackend.shutdown`` waits."""


class Agent:
    """The agent's state; request handlers are thin wrappers around its methods."""

    def __init__(self, *, home: Path, session: aiohttp.ClientSession) -> None:
        self.home = home
        # Unique to this agent's life, not 0: a gateway that outlived the previous
        # agent skips a snapshot whose generation equals the last one it saw, and a
        # restarted agent counting from 0 again reached it (a replica that moved
        # port while the agent was away stayed unknown to the gateway).
        self.generation = time.time_ns() // 1000
        self.environments: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Event()
        self.ports = ports.PortLeases.for_user(ports.port_range_from_env())
        self.failed = FailedReplicas()
        """replicas stopped before they became ready, and why (``status``, the gateway)"""
        self.replicas = Supervisor(
            session=session,
            on_change=self.changed,
            ports=self.ports,
            log_limits=log_limits_from_env(os.environ),
            on_stopped=lambda status: self.failed.record(status, now=time.time()),
        )
        self.gateways = Supervisor(session=session, on_change=self.changed)
        self.stopped = asyncio.Event()
        self.observer = attach_observer(self, session)
        self._gpus: int | None = None
        self.table = TableKeeper(home, body=self._table_body)

    def changed(self) -> None:
        """Bump the generation, wake long-polls and persist the table (a failed save is
        kept in ``table.problem`` and retried; it never reaches the caller)."""
        self.observer.poke()
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()
        self.table.save()

    def set_environment(self, environment: str, config: dict[str, Any]) -> str | None:
        """Make ``config`` the environment's only once the table holds it; on a failed
        save the previous config stays and the problem is returned (an apply that
        fails must not leave its config live)."""
        previous = self.environments.get(environment)
        self.environments[environment] = config
        problem = self.table.save()
        if problem is not None:
            if previous is None:
                del self.environments[environment]
            else:
                self.environments[environment] = previous
        return problem

    async def wait_change(self, generation: int, *, timeout_s: float) -> None:
        if generation != self.generation:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=timeout_s)

    def _taken_ports(self) -> set[int]:
        procs = {**self.replicas.processes, **self.gateways.processes}
        return {m.port for m in procs.values()}

    def start_replica(
        self, spec: ReplicaSpec, *, adopt_pid: int | None = None, api_key: str | None = None
    ) -> Managed:
        """Supervise a replica (GPUs of its own when its service asks for some; raises
        ``GpuShortageError`` when too few are free).

        Its engine gets an API key of its own when it reads one (``api_key_env``), so
        only this agent and the gateway can call its port; ``api_key`` is the one an
        earlier agent gave it (an adopted process keeps what it was started with)."""
        if spec.replica_id in self.replicas.processes:
            return self.replicas.processes[spec.replica_id]
        self.failed.clear_slot(spec.environment, spec.service, spec.slot)
        if wanted_gpus(spec):
            others = (m.spec for m in self.replicas.processes.values())
            spec = assign_gpus(spec, others, count=self._gpu_count())
        port = self.ports.claim(spec.port, taken=self._taken_ports())
        managed = self._managed(spec, port=port, folder=spec.environment, adopt_pid=adopt_pid)
        if adopt_pid is None and api_key is None and spec.launch.api_key_env:
            api_key = secrets.token_urlsafe(32)
        managed.api_key = api_key
        self.replicas.start(managed)
        return managed

    def engine_keys(self, environment: str) -> dict[str, str]:
        """replica id -> its engine's API key, for the environment's gateway only."""
        return {
            m.spec.replica_id: m.api_key
            for m in self.replicas.processes.values()
            if m.spec.environment == environment and m.api_key
        }

    def _gpu_count(self) -> int:
        """The GPUs this machine has (asked once, when a replica first wants one)."""
        if self._gpus is None:
            self._gpus = visible_gpus().count
        return self._gpus

    def _managed(
        self, spec: ReplicaSpec, *, port: int, folder: str, adopt_pid: int | None
    ) -> Managed:
        argv = [arg.replace("{port}", str(port)) for arg in spec.launch.argv]
        log_path = self._log_file(folder, spec.replica_id)
        return Managed(spec=spec, port=port, argv=argv, log_path=log_path, adopted_pid=adopt_pid)

    def _log_file(self, folder: str, name: str) -> Path:
        """A process's log, made here, private, before anything appends to it: the
        supervisor opens it by name, which is safe once every folder on the way is
        this user's only and the file no link."""
        logs = self.home / LOGS_FOLDER
        private_folder(logs)
        private_folder(logs / folder)
        path = logs / folder / f"{name}.log"
        os.close(open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
        return path

    async def run_gateway(self, environment: str, body: dict[str, Any]) -> Managed:
        body = {**body, "env": {**body.get("env", {}), **gateway_env(self.observer.settings)}}
        spec = gateway_spec(environment, body, socket_path=self.home / SOCKET_NAME)
        current = self.gateways.processes.get(spec.replica_id)
        if current is not None:
            if current.spec == spec:
                return current
            await self.gateways.stop(spec.replica_id, drain_timeout_s=0)
        host = str(spec.config.get("host", "127.0.0.1"))
        holder = None if spec.port is None else port_holder(spec.port, host)
        if spec.port is None or holder is not None:
            words = holder.describe() if holder else "no port given"
            raise web.HTTPConflict(
                text=json.dumps({"error": f"the gateway of {environment} cannot listen: {words}"}),
                content_type="application/json",
            )
        managed = self._managed(spec, port=spec.port, folder="gateways", adopt_pid=None)
        self.gateways.start(managed)
        return managed

    def _table_body(self) -> dict[str, Any]:
        return {
            "replicas": [_persisted(m) for m in self.replicas.processes.values()],
            "gateways": [_persisted(m) for m in self.gateways.processes.values()],
            "environments": self.environments,
            "failed": self.failed.to_json(),
        }

    def restore(self) -> None:
        """Adopt the replicas and gateways a previous agent left running. Raises
        ``UnsafePathError`` for a table another user could have written: it lists
        commands to run.

        In an environment where something still runs, supervision goes on: what died
        while no agent watched is started again (every command adopts before it plans,
        so its plan sees them). An environment with nothing left running (the machine
        restarted) is forgotten, rows and config: a command finds no process to adopt
        there and starts no agent, so its plan shows everything as drift to create, and
        apply must create exactly that, not find the agent restarting it all behind the
        plan's back (apply printed 'No changes')."""
        body = read_table(self.home)
        if body is None:
            return
        rows = [*body.get("replicas", []), *body.get("gateways", [])]
        living = {row["spec"].get("environment") for row in rows if _adoptable(row)}
        self.environments = {
            env: config for env, config in body.get("environments", {}).items() if env in living
        }
        self.failed.load(body.get("failed"))
        for env in sorted({row["spec"].get("environment") for row in rows} - living):
            log.warning("nothing of environment %s runs any more; forgotten", env)
            self.failed.forget(env)
        for item in body.get("replicas", []):
            if item["spec"].get("environment") not in living:
                continue
            spec = spec_from_json(item["spec"])
            pid = _adoptable(item)
            key = item.get("api_key")
            try:
                managed = self.start_replica(
                    _with_port(spec, item["port"]),
                    adopt_pid=pid,
                    api_key=key if isinstance(key, str) and key else None,
                )
            except GpuShortageError as exc:  # a table saved before GPUs were assigned
                log.error("cannot restore replica %s: %s", spec.replica_id, exc)
                continue
            managed.started_at = _started_at(item) if pid else None  # uptime goes on
        for item in body.get("gateways", []):
            if item["spec"].get("environment") not in living:
                continue
            spec = spec_from_json(item["spec"])
            pid = _adoptable(item)
            managed = self._managed(spec, port=item["port"], folder="gateways", adopt_pid=pid)
            managed.started_at = _started_at(item) if pid else None
            self.gateways.start(managed)

    async def shutdown(self) -> None:
        """Stop every gateway and replica, then let ``serve`` exit, whatever fails on the
        way (a home deleted under us, a full disk): a step that raises is logged and the
        next one runs; what a failed stop left running is killed."""
        try:
            log.info("shutting down")
            for supervisor, drain_s in ((self.gateways, 0.0), (self.replicas, 5.0)):
                what = "gateways" if supervisor is self.gateways else "replicas"
                try:
                    ended = await bounded(
                        f"stopping the {what}", supervisor.stop_all(drain_timeout_s=drain_s),
                        timeout_s=drain_s + STOP_STEP_S,
                    )  # fmt: skip
                except Exception:
                    log.exception("stopping the %s failed; killing what is left", what)
                    ended = False
                if not ended:
                    _kill_left(supervisor)
            self.environments.clear()
            self.failed.clear()
            self.table.save()
            self.table.close()
        finally:
            self._changed.set()  # long-polls answer now, not when they time out
            self.stopped.set()


async def bounded(what: str, step: Coroutine[Any, Any, None], *, timeout_s: float) -> bool:
    """Run one step of a shutdown for at most ``timeout_s``: False (logged, the step
    cancelled, not awaited) when it did not end in time, so that no step can keep the
    agent alive after it was asked to stop. Its error is raised."""
    started = time.monotonic()
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        log.warning("%s did not end within %.0f s; going on without it", what, timeout_s)
        return False
    task.result()
    log.info("%s took %.1f s", what, time.monotonic() - started)
    return True


def _persisted(managed: Managed) -> dict[str, Any]:
    """A table row; the engine's key too, or a restarted agent could not talk to the
    replica it adopts (the table is this user's only, 0600), and its start time, or an
    adopted replica's uptime would start again at 0."""
    return {
        "spec": spec_to_json(managed.spec),
        "port": managed.port,
        "pid": managed.pid,
        "api_key": managed.api_key,
        "started_at": managed.started_at,
    }


def _started_at(item: dict[str, Any]) -> float | None:
    value = item.get("started_at")
    return float(value) if isinstance(value, int | float) else None


def _kill_left(supervisor: Supervisor) -> None:
    from llmfleet.backends.local.process import signal_group

    for managed in supervisor.processes.values():
        if managed.pid is not None:
            signal_group(managed.pid, signal.SIGKILL)


def _with_port(spec: ReplicaSpec, port: int) -> ReplicaSpec:
    from dataclasses import replace

    return replace(spec, port=port)


def _adoptable(item: dict[str, Any]) -> int | None:
    from llmfleet.backends.local.process import listed_pid

    return listed_pid(item)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llmfleet-agent")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--daemonize", action="store_true", help="fork into the background")
    args = parser.parse_args(argv)
    home: Path = args.home.resolve()
    os.umask(0o077)  # our files and our replicas' are this user's only
    try:  # before the fork: the command that starts us sees the refusal
        private_folder(home)
        check_private(home / STATE_NAME)
        held = hold_agent_lock(home)  # the forked agent holds it on
    except UnsafePathError as exc:
        print(f"llmfleet agent: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    if held is None:
        print(f"llmfleet agent: another agent serves {home}", file=sys.stderr, flush=True)
        sys.exit(0)  # the command that started us finds that one answering
    if args.daemonize and os.fork() > 0:
        os._exit(0)
    from llmfleet.observe.logs import configure_logging

    configure_logging(service_name="llmfleet-agent")
    from llmfleet.backends.local.agent_http import serve

    run_then_exit(serve(home, socket_name=SOCKET_NAME))


def hold_agent_lock(home: Path) -> int | None:
    """Take the home's agent lock for the life of this process: its descriptor, or None
    when another live agent holds it.

    Commands that find no agent start one each; without the lock each would serve,
    the last to bind taking the socket and the others running on unseen. Taken before
    the daemon forks, it is held by the forked agent once the first process exits; it
    goes with that process (a killed agent never blocks the next one) and is not
    inherited by replicas (the descriptor is close-on-exec). A lock file that is a
    link or another user's is refused (``UnsafePathError``), as every file of the home.
    """
    fd = open_private(home / AGENT_LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def run_then_exit(main: Coroutine[Any, Any, None]) -> NoReturn:
    """Run the agent's loop until ``serve`` returns, then exit at once. Not asyncio.run:
    its clean-up waits without a bound for every task left to take its cancel (one that
    a shutdown step gave up on may never) and for the executor's threads, and the agent
    has by then stopped every process it owns and saved its table."""
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    code = 0
    try:
        loop.run_until_complete(main)
    except BaseException:
        log.exception("the agent failed")
        code = 1
    finally:
        logging.shutdown()
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
