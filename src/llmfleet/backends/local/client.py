"""``LocalBackend``: the Backend protocol over the local agent's unix socket.

Synchronous (httpx), for the CLI. ``ensure_agent`` starts the agent as a detached
process when it is not running (``starting``), so it outlives the command that
started it; ``adopt_orphans`` when it died and left processes running. httpx
is imported on the first call to a running agent: a command that finds no agent
(``status``, ``plan`` before the first apply) does not pay for it.

The requests carry specs, engine settings and keys, and the agent runs what they
say: the client talks only to a socket in a home that is this user's only
(``llmfleet.private_files``), served by a process of this user (``SO_PEERCRED``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfleet.backends.base import ReplicaSpec, ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit
from llmfleet.backends.local.failed import FailedReplica
from llmfleet.backends.local.layout import AGENT_LOG_NAME, SOCKET_NAME
from llmfleet.backends.local.process import pid_alive
from llmfleet.backends.local.starting import orphans_running, start_agent
from llmfleet.backends.local.wire import spec_to_json
from llmfleet.errors import (
    AgentUnreachableError,
    BackendError,
    GpuShortageError,
    PortInUseError,
    ReplicaFailedError,
)
from llmfleet.private_files import check_private, private_folder, refuse_foreign_peer

if TYPE_CHECKING:
    import httpx

FAILED_STATES = frozenset({ReplicaState.CRASH_LOOP})


class LocalBackend:
    """Replicas as processes on this machine, supervised by the local agent."""

    name = "local"

    def __init__(self, home: Path, *, timeout_s: float = 30.0) -> None:
        self.home = home
        self.socket_path = home / SOCKET_NAME
        self._timeout_s = timeout_s
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        """One client per backend: its transport is built once (building one costs
        tens of milliseconds, which a no-op apply cannot spare)."""
        if self._http is None:
            import httpx

            # A unix socket carries no TLS: verify=False skips loading CA certificates.
            transport = httpx.HTTPTransport(uds=str(self.socket_path), verify=False)
            self._http = httpx.Client(
                transport=transport, base_url="http://agent", timeout=self._timeout_s
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _socket_answers(self) -> bool:
        """Connect once ourselves: a stale socket file of a dead agent refuses at once."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
            refuse_foreign_peer(probe, self.socket_path)
        return True

    def _call(
        self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any
    ) -> Any:
        if not self.running():
            raise AgentUnreachableError(
                f"the local agent is not running (no socket at {self.socket_path})",
                hint="`llmfleet apply` starts it",
            )
        client = self._client()
        import httpx  # imported by _client() already: a dictionary lookup

        try:
            timeout = timeout_s or self._timeout_s
            response = client.request(method, path, timeout=timeout, **kwargs)
        except httpx.TransportError as exc:
            raise AgentUnreachableError(
                f"the local agent at {self.socket_path} does not answer: {exc}",
                hint="`llmfleet down` then `llmfleet apply` restarts it",
            ) from exc
        if response.status_code == 409:
            raise PortInUseError(response.json().get("error", "port in use"))
        if response.status_code == 422:  # too few free GPUs for it now
            body = response.json()
            raise GpuShortageError(body["error"], hint=body.get("hint"))
        if response.status_code >= 400:
            raise self._refusal(method, path, response)
        return response.json()

    def _refusal(self, method: str, path: str, response: httpx.Response) -> BackendError:
        """The agent's own words when it gave some (``{"error", "hint"}``: e.g. 507, its
        table cannot be written), else the status and where its log is."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return BackendError(
                f"the local agent refused {method} {path}: {body['error']}", hint=body.get("hint")
            )
        return BackendError(
            f"the local agent failed on {method} {path} (HTTP {response.status_code})",
            hint=f"see {self.home / AGENT_LOG_NAME}",
        )

    def running(self) -> bool:
        """True if this user's agent accepts connections (a raw connect: cheap, and it
        never leaves httpx half-connected to a socket that is being replaced). Raises
        ``UnsafePathError`` for a home or socket another user could have put there."""
        if not private_folder(self.home, create=False) or not check_private(self.socket_path):
            return False
        return self._socket_answers()

    def adopt_orphans(self) -> bool:
        """Start the agent when it is gone but its table lists processes that still run
        (it was killed: kill -9, the OOM killer), so that it adopts them; True if it did.

        A command that reported or planned without them would lie: ``plan`` showed
        every replica as missing, ``apply`` doubled the fleet, ``down`` left them
        running. Starting the agent changes nothing that runs; when nothing listed
        runs (after ``down``, or a reboot) no agent is started."""
        if self.running() or not orphans_running(self.home):
            return False
        self.ensure_agent()
        return True

    def ensure_agent(self) -> None:
        """Start the agent if it is not running; wait until it answers."""
        if not self.running():
            start_agent(self.home, answers=self.running)

    def list_replicas(
        self, environment: str | None = None, *, log_lines: int = 0
    ) -> list[ReplicaStatus]:
        if not self.running():
            return []
        params: dict[str, Any] = {"log_lines": log_lines}
        if environment is not None:
            params["environment"] = environment
        body = self._call("GET", "/v1/replicas", params=params)
        return [ReplicaStatus.from_json(item) for item in body["replicas"]]

    def failed_replicas(self, environment: str | None = None) -> list[FailedReplica]:
        """Replicas stopped before they became ready, and why (``local.failed``)."""
        if not self.running():
            return []
        params = {} if environment is None else {"environment": environment}
        body = self._call("GET", "/v1/replicas", params=params)
        return [FailedReplica.from_json(item) for item in body.get("failed", [])]

    def start_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        return ReplicaStatus.from_json(self._call("POST", "/v1/replicas", json=spec_to_json(spec)))

    def wait_ready(self, replica_ids: Sequence[str], *, timeout_s: float) -> None:
        """Long-polls the agent, so a replica turning ready is seen at once."""
        deadline = time.monotonic() + timeout_s
        pending = set(replica_ids)
        generation: int | None = None
        while pending:
            params: dict[str, Any] = {"log_lines": 20}
            if generation is not None:
                params.update(wait_generation=generation, timeout=1.0)
            body = self._call("GET", "/v1/replicas", params=params)
            generation = int(body["generation"])
            states = {
                r.replica_id: r
                for r in map(ReplicaStatus.from_json, body["replicas"])
                if r.replica_id in pending
            }
            for replica_id in list(pending):
                status = self._check_progress(replica_id, states.get(replica_id))
                if status.state == ReplicaState.READY:
                    pending.discard(replica_id)
            if pending and time.monotonic() > deadline:
                raise self._not_ready(states[sorted(pending)[0]], timeout_s)

    @staticmethod
    def _check_progress(replica_id: str, status: ReplicaStatus | None) -> ReplicaStatus:
        if status is None:
            raise ReplicaFailedError(f"replica {replica_id} disappeared while starting")
        if status.state in FAILED_STATES:
            meaning = describe_exit(status.last_exit)
            raise ReplicaFailedError(
                f"replica {replica_id} is crash-looping: it exited {status.restarts} times "
                f"without becoming ready; last time it was {meaning.summary}",
                log_tail=status.log_tail,
                hint=meaning.fix,
                service=status.service,
            )
        return status

    @staticmethod
    def _not_ready(status: ReplicaStatus, timeout_s: float) -> ReplicaFailedError:
        return ReplicaFailedError(
            f"replica {status.replica_id} was not ready within {timeout_s:.0f} s "
            f"(state {status.state})",
            log_tail=status.log_tail,
            service=status.service,
        )

    def stop_replica(self, replica_id: str, *, drain_timeout_s: float) -> None:
        self._call(
            "POST",
            f"/v1/replicas/{replica_id}/stop",
            json={"drain_timeout_s": drain_timeout_s},
            timeout_s=drain_timeout_s + 30,
        )

    def logs(self, replica_id: str, *, lines: int) -> list[str]:
        body = self._call("GET", f"/v1/replicas/{replica_id}/logs", params={"lines": lines})
        return list(body["lines"])

    def environment_config(self, environment: str) -> dict[str, Any]:
        """The services config the gateway routes by, as last set by apply."""
        if not self.running():
            return {"services": {}, "continuation": {}, "replicas": []}
        return dict(self._call("GET", f"/v1/environments/{environment}"))

    def set_environment_config(
        self,
        environment: str,
        *,
        services: dict[str, Any],
        continuation: dict[str, Any],
        observability: dict[str, Any] | None = None,
        costs: dict[str, Any] | None = None,
        spec_file: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "services": services, "continuation": continuation, "observability": observability
        }  # fmt: skip
        body["costs"] = costs  # prices of the replicas, for the agent's cost series
        body["spec_file"] = spec_file  # the agent runs the spec's upgrade policies from it
        self._call("PUT", f"/v1/environments/{environment}", json=body)

    def forget_environment(self, environment: str) -> None:
        self._call("DELETE", f"/v1/environments/{environment}")

    def gateways(self, *, log_lines: int = 0) -> list[ReplicaStatus]:
        if not self.running():
            return []
        body = self._call("GET", "/v1/gateways", params={"log_lines": log_lines})
        return [ReplicaStatus.from_json(item) for item in body["gateways"]]

    def run_gateway(
        self,
        environment: str,
        *,
        host: str,
        port: int,
        state_url: str | None,
        state_base_dir: str | None,
    ) -> ReplicaStatus:
        body = {
            "host": host,
            "port": port,
            "state_url": state_url,
            "state_base_dir": state_base_dir,
        }
        return ReplicaStatus.from_json(self._call("PUT", f"/v1/gateways/{environment}", json=body))

    def wait_gateway(self, environment: str, *, timeout_s: float) -> None:
        """Block until the environment's gateway answers its health check."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [g for g in self.gateways(log_lines=20) if g.environment == environment]
            if not found:
                raise ReplicaFailedError(f"the gateway of {environment} is not running")
            self._check_progress(found[0].replica_id, found[0])
            if found[0].state == ReplicaState.READY:
                return
            if time.monotonic() > deadline:
                raise self._not_ready(found[0], timeout_s)
            time.sleep(0.05)

    def stop_gateway(self, environment: str) -> None:
        self._call("DELETE", f"/v1/gateways/{environment}")

    def agent_info(self) -> dict[str, Any]:
        """The agent's pid, generation and ``problems`` (e.g. its table cannot be saved)."""
        return dict(self._call("GET", "/v1/agent"))

    def shutdown(self, *, timeout_s: float = 90.0) -> bool:
        """Stop every replica and gateway and the agent itself; False if it was not
        running. Returns once the agent's process is gone; raises ``BackendError`` when
        it is still alive after ``timeout_s`` (never a success that did not happen)."""
        if not self.running():
            return False
        pid = int(self.agent_info()["pid"])
        self._call("POST", "/v1/shutdown")
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            raise BackendError(
                f"the local agent (pid {pid}) is still running {timeout_s:.0f} s after it was "
                "asked to stop; its replicas and gateways may still run",
                hint=f"see {self.home / AGENT_LOG_NAME}; `kill {pid}` stops it and them",
            )
        return True
