"""The one exception tree of llmfleet.

Every error a user can cause or act on is a ``FleetError``; the CLI prints its
message (and hint) and exits with its ``exit_code``, never a traceback. Foreign
exceptions are translated at one boundary with ``raise ... from exc``.

Errors are split by whether retrying can help (kopf's ``TemporaryError``)::

    FleetError                        exit 1 unless said otherwise
    ├── SpecError                     fleet.yaml is wrong (exit 2), carries every problem
    ├── UnsafePathError               a runtime file another user could have written or swapped
    ├── StateError                    the state store cannot be used
    │   ├── StateCorruptError         not a database / wrong schema
    │   ├── LockHeldError             another apply holds the lock (names holder, since)
    │   └── StalePlanError            the plan was built from an older state serial
    ├── ModelSourceError              a model source cannot be resolved or fetched
    │   └── OfflineError              the source needs a network this machine lacks
    ├── EngineError                   an engine cannot be installed or run here
    │   ├── EngineUnavailableError    e.g. vLLM without a GPU
    │   └── EngineVersionError        the pinned version does not exist
    ├── BackendError                  the runtime backend refused or failed
    │   ├── AgentUnreachableError     the local agent is not running / not answering
    │   ├── PortInUseError            a port named in the spec is taken
    │   └── ReplicaFailedError        a replica crashed or never became ready (log tail)
    ├── ApplyError                    an apply failed part-way; carries what was done
    ├── GatewayError                  gateway-side failures (see gateway.errors for HTTP)
    │   └── UpstreamError             one upstream attempt failed
    │       ├── TemporaryUpstreamError    retrying elsewhere can help
    │       └── PermanentUpstreamError    the request itself is wrong
    ├── ValidationError               a validation suite is malformed or cannot run
    ├── ReleaseError                  promote / rollback / upgrade refused
    └── IngestError                   a pipeline's source, embedding service or index unusable
        └── IndexModelMismatchError   the index holds another model's vectors: rebuild it
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class FleetError(Exception):
    """Base of every error llmfleet raises on purpose.

    ``hint`` tells the user how to fix it; ``exit_code`` is what the CLI returns.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        prefix = f"{self.path}: " if self.path else ""
        return f"{where}: {prefix}{self.message}"


class SpecError(FleetError):
    """The spec is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the spec"
        super().__init__(head + ":\n" + "\n".join("  " + p.render() for p in self.problems))


class UnsafePathError(FleetError):
    """A file or folder the runtime would read, run from or connect to is not this
    user's only: another owner, a mode that lets others write it, or a symbolic link.
    Refused, never repaired behind the user's back (its contents may be an attacker's)."""


class StateError(FleetError):
    """The state store cannot be opened, read or written."""


class StateCorruptError(StateError):
    """The state database is not a database llmfleet can read."""


class LockHeldError(StateError):
    """Another process holds the state lock."""

    def __init__(self, *, name: str, holder: str, since: str) -> None:
        super().__init__(
            f"the state lock '{name}' is held by {holder} since {since}",
            hint="wait for that apply to finish; if it died, run `llmfleet unlock` "
            "(a lock of a dead process on this host is broken automatically)",
        )
        self.name = name
        self.holder = holder
        self.since = since


class StalePlanError(StateError):
    """A plan was built from a state serial that is no longer current."""


class ModelSourceError(FleetError):
    """A model source cannot be resolved or fetched."""


class OfflineError(ModelSourceError):
    """The model source needs a network that this machine cannot reach."""


class EngineError(FleetError):
    """An engine cannot be installed, started or used."""


class EngineUnavailableError(EngineError):
    """The engine cannot run on this machine (e.g. vLLM without a GPU)."""


class GpuShortageError(EngineUnavailableError):
    """The machine has the GPUs, but too few are free right now (other replicas hold them)."""


class EngineVersionError(EngineError):
    """The engine version pinned in the spec does not exist."""


class BackendError(FleetError):
    """The runtime backend refused or failed an operation."""


class AgentUnreachableError(BackendError):
    """The local agent is not running or does not answer."""


class PortInUseError(BackendError):
    """A port the spec names is already in use by another program."""


class ReplicaFailedError(BackendError):
    """A replica crashed or did not become ready; carries its last log lines, and its
    service (the CLI names the ``logs`` command that shows the rest)."""

    def __init__(
        self,
        message: str,
        *,
        log_tail: Sequence[str] = (),
        hint: str | None = None,
        service: str | None = None,
    ):
        tail = "".join(f"\n    | {line}" for line in log_tail)
        super().__init__(message + (f"\n  last log lines:{tail}" if tail else ""), hint=hint)
        self.log_tail = tuple(log_tail)
        self.service = service


class ApplyError(FleetError):
    """An apply failed part-way; ``done`` lists the actions that completed."""

    def __init__(self, message: str, *, done: Sequence[str] = (), hint: str | None = None):
        super().__init__(message, hint=hint)
        self.done = tuple(done)


class GatewayError(FleetError):
    """A failure inside the gateway."""


@dataclass(frozen=True)
class Attempt:
    """One upstream attempt of a request, kept for the failover history."""

    replica: str
    error: str
    elapsed_s: float


class UpstreamError(GatewayError):
    """An upstream attempt failed."""

    def __init__(self, message: str, *, attempts: Sequence[Attempt] = ()):
        super().__init__(message)
        self.attempts = tuple(attempts)


class TemporaryUpstreamError(UpstreamError):
    """Retrying on another replica (or later) can help: connect error, 5xx, timeout."""


class PermanentUpstreamError(UpstreamError):
    """Retrying cannot help: the upstream rejected the request itself (4xx)."""

    def __init__(self, message: str, *, status: int, body: bytes = b""):
        super().__init__(message)
        self.status = status
        self.body = body


class ValidationError(FleetError):
    """A validation suite is malformed or cannot be run."""


class ReleaseError(FleetError):
    """Promote, rollback or upgrade was refused."""


class IngestError(FleetError):
    """An ingestion cannot run: its source, embedding service or index cannot be used.

    A single unreadable document is not one: it is skipped and reported."""


class IndexModelMismatchError(IngestError):
    """The index holds vectors of another embedding model; it must be rebuilt first."""


@dataclass
class History:
    """Accumulates attempts for an error that ends a failover."""

    attempts: list[Attempt] = field(default_factory=list)
