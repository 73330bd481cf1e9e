"""Fault injection against a real local fleet: does the control plane keep its fleet?

Each sequence starts a fresh project (a temporary folder, free ports, 2 sim
replicas behind a gateway), puts a steady load on the gateway, breaks something on
purpose, then does what an operator would (status, plan, apply, down, destroy,
state restore). Issue 15's faults: the agent killed with SIGKILL; the agent's home
unwritable while a replica crashes; the project folder deleted, then SIGTERM; a
foreign program squatting on a replica's port; a stale saved plan (after another
apply, and after down); the CLI killed half-way through an apply; a truncated
state.db. For each it prints:

- converged: the next plan says No changes, the spec's replicas are ready and the
  gateway answers (for the deleted folder: every process exited);
- duplicates: replicas beyond one per slot or beyond the spec's count (the most
  seen at any point after the fault);
- left behind: processes of the project (agent, replicas, gateway) still alive once
  the sequence ended with `down` (or the SIGTERM);
- failed requests / total through the gateway while it happened (requests made
  while the operator deliberately stops the fleet are not counted);
- seconds from the fault until converged (operator commands included).

Goal (issue 15): all converge, 0 duplicates, 0 left behind, 0 failed requests.
Every process a sequence started is killed at the end, pass or fail.

    .venv/bin/python bench/faults.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmfleet.backends.local.client import LocalBackend  # noqa: E402

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {{kind: sim, version: "1.0.0", args: [--ttft, "0.01", --tps, "400"{extra}]}}
    replicas: {replicas}
environments:
  production:
    gateway: {{port: {port}}}
"""
CONVERGE_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


class Project:
    """A throwaway project driven through the real CLI; remembers every process it saw
    (with its command line, so a reused pid is never counted or killed)."""

    def __init__(self, base: Path, name: str) -> None:
        self.root = base / name
        self.root.mkdir()
        self.spec = self.root / "fleet.yaml"
        self.home = self.root / ".llmfleet"
        self.port = free_port()
        self.replicas = 2
        self.seen: dict[int, bytes] = {}

    def write(self, *, replicas: int = 2, extra: str = "") -> None:
        self.replicas = replicas
        self.spec.write_text(SPEC.format(replicas=replicas, port=self.port, extra=extra))

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "llmfleet", *args, "-f", str(self.spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root if self.root.exists() else "/",
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )
        self.remember()
        return result

    def popen_apply(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "llmfleet", "apply", "--yes", "-f", str(self.spec)],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )

    @contextlib.contextmanager
    def backend(self) -> Iterator[LocalBackend]:
        backend = LocalBackend(self.home)
        try:
            yield backend
        finally:
            backend.close()

    def listed(self) -> list[dict[str, Any]]:
        """The agent's table, read from disk (works while the agent is dead)."""
        try:
            table = json.loads((self.home / "agent-state.json").read_text())
        except (OSError, ValueError):
            return []
        return [*table.get("replicas", []), *table.get("gateways", [])]

    def agent_pid(self) -> int | None:
        with self.backend() as backend:
            if not backend.running():
                return None
            return int(backend.agent_info()["pid"])

    def remember(self) -> None:
        pids = [row.get("pid") for row in self.listed()]
        with contextlib.suppress(Exception):
            pids.append(self.agent_pid())
        for pid in pids:
            if isinstance(pid, int) and (line := cmdline(pid)) is not None:
                self.seen.setdefault(pid, line)

    def live(self) -> list[dict[str, Any]]:
        """Replica rows of the running agent (none when it is not running)."""
        with self.backend() as backend:
            if not backend.running():
                return []
            return [r.to_json() for r in backend.list_replicas("production")]

    def duplicates(self) -> int:
        rows = [r for r in self.live() if r["state"] != "stopped"]
        slots = {r["slot"] for r in rows}
        return max(len(rows) - len(slots), len(rows) - self.replicas, 0)

    def ready(self) -> int:
        return sum(1 for r in self.live() if r["state"] == "ready")

    def left_behind(self, *, wait_s: float = 10.0) -> int:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            alive = [p for p, line in self.seen.items() if cmdline(p) == line]
            if not alive:
                return 0
            time.sleep(0.1)
        return len([p for p, line in self.seen.items() if cmdline(p) == line])

    def kill_all(self) -> None:
        if self.root.exists():
            self.remember()
        for pid, line in self.seen.items():
            if cmdline(pid) == line:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


class Load:
    """Clients calling the gateway back to back; counts answers that were not 200."""

    def __init__(self, port: int, *, clients: int = 4) -> None:
        self.port = port
        self.clients = clients
        self.ok = 0
        self.failed = 0
        self.errors: list[str] = []
        self._counting = True
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)

    def pause_counting(self) -> None:
        """From now on the operator stops the fleet on purpose: not failures."""
        self._counting = False

    def _client(self) -> None:
        url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    status = client.post(url, json=body).status_code
                    error = "" if status == 200 else f"HTTP {status}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                with self._lock:
                    if not self._counting:
                        pass
                    elif error:
                        self.failed += 1
                        if len(self.errors) < 5:
                            self.errors.append(error)
                    else:
                        self.ok += 1
                time.sleep(0.02)

    @property
    def total(self) -> int:
        return self.ok + self.failed


@dataclass
class Outcome:
    name: str
    converged: bool = False
    duplicates: int = 0
    left: int = 0
    failed: int | None = None
    total: int | None = None
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)


class Bench:
    """The base folder and every project made in it, so each is cleaned up at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.projects: list[Project] = []

    def applied(self, name: str, **spec: Any) -> Project:
        project = Project(self.base, name)
        self.projects.append(project)
        project.write(**spec)
        result = project.run("apply", "--yes")
        if result.returncode != 0:
            raise RuntimeError(f"apply failed: {result.stderr}")
        return project

    def kill_all(self) -> None:
        for project in self.projects:
            project.kill_all()


def wait_converged(project: Project, outcome: Outcome, started: float) -> None:
    """Poll until plan is empty, the replicas are ready and the gateway answers."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while time.monotonic() < deadline:
        outcome.duplicates = max(outcome.duplicates, project.duplicates())
        if project.ready() == project.replicas and gateway_answers(project.port):
            plan = project.run("plan", "--detailed-exitcode")
            if plan.returncode == 0:
                outcome.converged = True
                outcome.seconds = time.monotonic() - started
                return
        time.sleep(0.2)


def gateway_answers(port: int) -> bool:
    body = {"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    try:
        return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body).is_success
    except httpx.HTTPError:
        return False


def finish(project: Project, outcome: Outcome, load: Load | None) -> Outcome:
    """Stop counting, take the fleet down as an operator would, count what is left."""
    if load is not None:
        load.pause_counting()
        outcome.failed, outcome.total = load.failed, load.total
        if load.errors:
            outcome.notes.append(f"errors: {', '.join(load.errors)}")
        load.stop()
    if project.root.exists():
        outcome.duplicates = max(outcome.duplicates, project.duplicates())
        down = project.run("down")
        if down.returncode != 0:
            outcome.notes.append(f"down failed: {down.stderr.strip()[-120:]}")
    outcome.left = project.left_behind()
    return outcome


def note(outcome: Outcome, ok: bool, text: str) -> None:
    outcome.notes.append(("" if ok else "NOT: ") + text)


# The sequences ----------------------------------------------------------------------


def agent_killed(bench: Bench) -> Outcome:
    outcome = Outcome("agent kill -9, then status/plan/apply/destroy")
    project = bench.applied("agent")
    with Load(project.port) as load:
        pid = project.agent_pid()
        assert pid is not None
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        status = project.run("status")
        note(outcome, "not running" not in status.stdout, "status lists the fleet")
        plan = project.run("plan", "--detailed-exitcode")
        note(outcome, plan.returncode == 0, "plan says No changes")
        project.run("apply", "--yes")
        wait_converged(project, outcome, started)
        load.pause_counting()
        destroy = project.run("destroy", "--yes")
        note(
            outcome,
            destroy.returncode == 0 and not gateway_answers(project.port),
            "destroy stops the gateway",
        )
        return finish(project, outcome, load)


def home_unwritable(bench: Bench) -> Outcome:
    outcome = Outcome("agent home unwritable, then a replica crash")
    project = bench.applied("home")
    with Load(project.port) as load:
        victim = project.live()[0]
        blocker = project.home / "agent-state.tmp"  # every save's temporary file
        blocker.mkdir()
        started = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = {r["replica_id"]: r for r in project.live()}
            row = rows.get(victim["replica_id"])
            if row and row["restarts"] >= 1 and row["state"] == "ready":
                break
            time.sleep(0.1)
        status = json.loads(project.run("status", "--json").stdout)
        note(outcome, bool(status.get("warnings")), "status --json warns of the unsaved table")
        refused = project.run("apply", "--yes")  # a no-op apply still saves nothing wrong
        note(outcome, "Traceback" not in refused.stderr, "no traceback from apply")
        blocker.rmdir()
        wait_converged(project, outcome, started)
        return finish(project, outcome, load)


def folder_deleted(bench: Bench) -> Outcome:
    outcome = Outcome("project folder deleted, then SIGTERM to the agent")
    project = bench.applied("deleted")
    project.remember()
    pid = project.agent_pid()
    assert pid is not None
    with Load(project.port) as load:
        shutil.rmtree(project.root)
        time.sleep(2)  # the fleet keeps serving without its folder
        load.pause_counting()
        outcome.failed, outcome.total = load.failed, load.total
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        outcome.left = project.left_behind(wait_s=20)
        outcome.converged = outcome.left == 0
        outcome.seconds = time.monotonic() - started if outcome.converged else None
    return outcome


def port_squatted(bench: Bench) -> Outcome:
    outcome = Outcome("foreign squatter on a replica's port")
    project = bench.applied("squat")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with Load(project.port) as load:
        started = time.monotonic()
        for _ in range(5):  # the agent restarts at once: the squat may lose the race
            victim = project.live()[0]
            os.kill(victim["pid"], signal.SIGKILL)
            if squat(squatter, victim["port"]):
                break
            wait_converged(project, Outcome(""), time.monotonic())
        else:
            note(outcome, False, "the squatter never won the port")
        wait_converged(project, outcome, started)
        moved = [r for r in project.live() if r["port"] == victim["port"]]
        note(outcome, not moved, f"the replica left port {victim['port']}")
        squatter.close()
        return finish(project, outcome, load)


def squat(sock: socket.socket, port: int) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            time.sleep(0.001)
            continue
        sock.listen()
        return True
    return False


def stale_plan_after_apply(bench: Bench) -> Outcome:
    outcome = Outcome("stale saved plan (another apply came first)")
    project = bench.applied("stale")
    with Load(project.port) as load:
        project.write(replicas=3)
        saved = project.root / "plan.json"
        project.run("plan", "--out", str(saved))
        started = time.monotonic()
        project.run("apply", "--yes")  # a colleague applies the same change
        stale = project.run("apply", str(saved))
        note(outcome, stale.returncode != 0, "apply PLAN refused")
        wait_converged(project, outcome, started)
        return finish(project, outcome, load)


def stale_plan_after_down(bench: Bench) -> Outcome:
    outcome = Outcome("stale saved plan (down came first; no load)")
    project = bench.applied("stale-down")
    saved = project.root / "plan.json"
    project.write(replicas=3)
    project.run("plan", "--out", str(saved))
    project.run("down")
    started = time.monotonic()
    stale = project.run("apply", str(saved))
    note(
        outcome,
        stale.returncode != 0 and "changed since the plan" in stale.stderr,
        "apply PLAN refused",
    )
    note(outcome, not gateway_answers(project.port), "nothing claimed to listen")
    project.run("apply", "--yes")
    wait_converged(project, outcome, started)
    return finish(project, outcome, None)


def apply_killed(bench: Bench) -> Outcome:
    outcome = Outcome("CLI apply killed mid-way (kill -9)")
    project = bench.applied("killed")
    with Load(project.port) as load:
        project.write(extra=', --load-time, "3"')  # a replace whose replicas load slowly
        apply = project.popen_apply()
        deadline = time.monotonic() + 30
        while len(project.live()) <= project.replicas and time.monotonic() < deadline:
            time.sleep(0.05)
        apply.kill()
        apply.wait()
        started = time.monotonic()
        history = project.run("history")
        note(outcome, "interrupted" in history.stdout, "history records it as interrupted")
        project.run("apply", "--yes")
        wait_converged(project, outcome, started)
        return finish(project, outcome, load)


def state_truncated(bench: Bench) -> Outcome:
    outcome = Outcome("state.db truncated to 0 bytes, then restore")
    project = bench.applied("state")
    project.run("apply", "--yes")
    with Load(project.port) as load:
        started = time.monotonic()
        (project.home / "state.db").write_bytes(b"")
        plan = project.run("plan")
        note(
            outcome,
            plan.returncode != 0 and "state restore" in plan.stdout + plan.stderr,
            "plan stops and names `llmfleet state restore`",
        )
        restored = project.run("state", "restore", "--yes")
        note(outcome, restored.returncode == 0, "state restore")
        history = project.run("history")
        note(outcome, "apply" in history.stdout, "history is back")
        wait_converged(project, outcome, started)
        return finish(project, outcome, load)


def rebooted(bench: Bench) -> Outcome:
    outcome = Outcome("reboot: agent and every process killed (no load)")
    project = bench.applied("reboot")
    project.remember()
    for pid in list(project.seen):  # what a reboot does: all of them at once
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    project.left_behind(wait_s=10)
    started = time.monotonic()
    plan = project.run("plan")
    creates = plan.stdout.count("    + ")
    note(outcome, creates == 3, f"plan shows {creates} of 3 creates")
    applied = project.run("apply", "--yes")
    note(outcome, "3 to create" in applied.stdout, "apply carries out what plan showed")
    wait_converged(project, outcome, started)
    return finish(project, outcome, None)


def crash_looping(bench: Bench) -> Outcome:
    outcome = Outcome("replica crash-looping (5 kills at start)")
    project = bench.applied("loop")
    with Load(project.port) as load:
        victim = project.live()[0]
        killed: set[int] = set()
        started = time.monotonic()
        deadline = started + 30
        while len(killed) < 5 and time.monotonic() < deadline:
            row = next(r for r in project.live() if r["replica_id"] == victim["replica_id"])
            if row["pid"] and row["pid"] not in killed and cmdline(row["pid"]) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(row["pid"], signal.SIGKILL)
                killed.add(row["pid"])
            time.sleep(0.01)
        time.sleep(0.3)
        plan = project.run("plan", "--detailed-exitcode")
        note(
            outcome,
            plan.returncode == 2 and "crash-looping" in plan.stdout,
            "plan shows the crash loop as a change",
        )
        project.run("apply", "--yes")
        wait_converged(project, outcome, started)
        return finish(project, outcome, load)


def ports_raced(bench: Bench) -> Outcome:
    outcome = Outcome("two projects apply at once (port race)")
    first, second = Project(bench.base, "race-a"), Project(bench.base, "race-b")
    bench.projects += [first, second]
    for project in (first, second):
        project.write(replicas=3)
    started = time.monotonic()
    applies = [first.popen_apply(), second.popen_apply()]
    codes = [apply.wait(timeout=120) for apply in applies]
    note(outcome, codes == [0, 0], f"both applies succeeded ({codes})")
    ports = [{r["port"] for r in p.live()} for p in (first, second)]
    note(outcome, not ports[0] & ports[1], "no port shared between the projects")
    with Load(first.port) as load:
        wait_converged(first, outcome, started)
        converged = outcome.converged
        wait_converged(second, outcome, started)
        outcome.converged = converged and outcome.converged
        finish(second, Outcome(""), None)
        outcome.left += second.left_behind()
        return finish(first, outcome, load)


SEQUENCES: dict[str, Callable[[Bench], Outcome]] = {
    "agent": agent_killed,
    "home": home_unwritable,
    "deleted": folder_deleted,
    "squat": port_squatted,
    "stale": stale_plan_after_apply,
    "stale-down": stale_plan_after_down,
    "killed": apply_killed,
    "state": state_truncated,
    "reboot": rebooted,
    "crash-loop": crash_looping,
    "ports": ports_raced,
}


def run_one(name: str, bench: Bench) -> Outcome:
    try:
        return SEQUENCES[name](bench)
    except Exception as exc:  # a sequence that broke is a row, not the end of the run
        return Outcome(name, notes=[f"NOT: the sequence failed: {type(exc).__name__}: {exc}"])


def show(outcomes: list[Outcome], seconds: float) -> None:
    print()
    columns = ("converged", 9), ("dupl.", 5), ("left", 4), ("failed/total", 13), ("s", 6)
    head = f"{'sequence':<48} " + " ".join(f"{name:>{width}}" for name, width in columns)
    print(head)
    print("-" * len(head))
    for o in outcomes:
        failed = "n/a" if o.total is None else f"{o.failed}/{o.total}"
        took = "-" if o.seconds is None else f"{o.seconds:.1f}"
        converged = "yes" if o.converged else "NO"
        print(f"{o.name:<48} {converged:>9} {o.duplicates:>5} {o.left:>4} {failed:>13} {took:>6}")
    print()
    for o in outcomes:
        for line in o.notes:
            print(f"  {o.name}: {line}")
    ok = all(o.converged and not o.duplicates and not o.left and not o.failed for o in outcomes)
    verdict = "met" if ok else "NOT met"
    print(f"\ngoal (all converge, 0 duplicates, 0 left behind, 0 failed): {verdict}")
    print(f"bench ran {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SEQUENCES), default=list(SEQUENCES))
    args = parser.parse_args()
    started = time.monotonic()
    outcomes: list[Outcome] = []
    bench = Bench(Path(tempfile.mkdtemp(prefix="llmfleet-faults-")))
    try:
        for name in args.only:
            print(f"running: {name}", flush=True)
            outcomes.append(run_one(name, bench))
            bench.kill_all()  # what a sequence left is counted, then never left running
    finally:
        bench.kill_all()
        shutil.rmtree(bench.base, ignore_errors=True)
    show(outcomes, time.monotonic() - started)


if __name__ == "__main__":
    main()
