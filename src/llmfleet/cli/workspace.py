"""What a CLI command works on: the loaded spec, settings, state store and backend.

Built once per command from ``-f`` and ``--env``; opened lazily so that commands
that need no state (check, schema) do not touch the database. The store and the
backend are imported when first used, too: SQLAlchemy and the agent's HTTP client
are most of what a command would otherwise spend starting, and ``check`` needs
neither (tests/cli/test_fast_start.py holds this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from llmfleet.errors import FleetError
from llmfleet.private_files import private_folder
from llmfleet.settings import Settings
from llmfleet.spec.loading import LoadedSpec, load_spec
from llmfleet.spec.model import ResolvedEnvironment, ServiceSpec

if TYPE_CHECKING:
    from llmfleet.backends.base import Backend
    from llmfleet.backends.local.client import LocalBackend
    from llmfleet.plan.diff import ActualEnvironment
    from llmfleet.state.store import StateStore


@dataclass
class Workspace:
    spec_file: Path
    environment: str
    _store: StateStore | None = field(default=None, init=False)
    _fleets: dict[str, Backend] = field(default_factory=dict, init=False)

    @cached_property
    def loaded(self) -> LoadedSpec:
        return load_spec(self.spec_file)

    @property
    def spec_dir(self) -> Path:
        return self.spec_file.resolve().parent

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env(spec_dir=self.spec_dir)

    @cached_property
    def backend(self) -> LocalBackend:
        """The runtime, its agent started first when it died and left processes running:
        every command that reads or changes the runtime (status, plan, apply, down,
        destroy, validate, ...) sees what really runs, never an empty runtime beside
        replicas still serving (``LocalBackend.adopt_orphans``)."""
        from llmfleet.backends.local.client import LocalBackend

        backend = LocalBackend(self.settings.home)
        backend.adopt_orphans()
        return backend

    @property
    def store(self) -> StateStore:
        if self._store is None:
            from llmfleet.state.store import StateStore

            private_folder(self.settings.home, create=False)  # refused or tightened first
            self._store = StateStore.open(self.loaded.resolved.state, base_dir=self.spec_dir)
        return self._store

    @property
    def fleet(self) -> Backend:
        """The ``Backend`` this command's environment runs on."""
        return self.fleet_for(self.environment)

    def fleet_for(self, environment: str) -> Backend:
        """The ``Backend`` of ``environment``, by its ``backend.kind`` (local when the spec
        no longer has it: what a recorded local environment ran on). Built once."""
        if environment not in self._fleets:
            from llmfleet.backends.choice import backend_for

            envs = self.loaded.resolved.environments
            self._fleets[environment] = backend_for(
                envs[environment].backend if environment in envs else None,
                environment=envs.get(environment),
                fleet=self.loaded.resolved.name,
                local=lambda: self.backend,
            )
        return self._fleets[environment]

    def gateway_url_from_here(self, environment: str) -> str:
        """Where this command reaches ``environment``'s gateway: its backend's answer for a
        cluster; locally the spec's host and port, without starting the local runtime
        (a request through the gateway needs only the gateway)."""
        desired = self.loaded.resolved.environments[environment]
        if desired.backend.kind == "kubernetes":
            return self.fleet_for(environment).gateway_url_from_here(desired)
        return f"http://{desired.gateway.host}:{desired.gateway.port}"

    def close(self) -> None:
        for fleet in self._fleets.values():
            fleet.close()
        if self._store is not None:
            self._store.close()
        if "backend" in self.__dict__:
            self.backend.close()

    @property
    def desired(self) -> ResolvedEnvironment:
        envs = self.loaded.resolved.environments
        if self.environment not in envs:
            raise FleetError(
                f"no environment '{self.environment}' in {self.spec_file}",
                hint=f"environments: {', '.join(sorted(envs))}",
            )
        return envs[self.environment]

    def service(self, name: str) -> ServiceSpec:
        services = self.desired.services
        if name not in services:
            import difflib

            close = difflib.get_close_matches(name, services, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"services: {', '.join(sorted(services))}"
            )
            raise FleetError(f"no service '{name}' in environment {self.environment}", hint=hint)
        return services[name]

    def actual(self) -> ActualEnvironment:
        """What really runs in this environment (empty if nothing does)."""
        return self.fleet.actual(self.environment)
