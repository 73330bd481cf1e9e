"""Whether the engine versions a spec pins exist, and what apply must do to have them.

For ``check``, ``plan``, ``apply`` and ``fetch``, before anything is built:

- a version that was never released is a problem at the line that pins it, with the
  nearest released ones (or its released spelling: pip reads ``11434.0`` as
  ``11434.0.0``, but installs are kept under the version as written);
- one that is released but not installed here is a note saying what apply will do
  first (llama.cpp: a build of about 6 minutes on 2 cores);
- when the index cannot be reached, a warning says that the version went unchecked,
  rather than passing it.

Side effects: each adapter's ``installed`` (a look into the cache) and the listing
cache (``engines.listing``), which asks the index only when it must.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from packaging.version import InvalidVersion, Version

from llmfleet.engines.base import EngineAdapter, InstallsWork
from llmfleet.engines.listing import ListingCache
from llmfleet.engines.pypi_versions import nearest_versions
from llmfleet.engines.registry import get_adapter
from llmfleet.errors import EngineError
from llmfleet.spec.model import EngineKind, FleetSpec, ResolvedEnvironment
from llmfleet.spec.origins import written_at
from llmfleet.spec.placement import BackendKind
from llmfleet.spec.problems import Finding

AdapterFor = Callable[[EngineKind], EngineAdapter]


@dataclass(frozen=True)
class PinnedVersion:
    """One engine version the spec pins, who runs it, and what is known of it here."""

    kind: EngineKind
    version: str
    users: tuple[tuple[str, str], ...]
    """(environment, service) pairs that run it."""
    installed: bool
    released: tuple[str, ...] = ()
    """The index's versions, newest first; empty when it was not asked (installed) or
    could not be (``unchecked``)."""
    unchecked: str | None = None
    """Why it is unknown whether the version exists (the index cannot be reached)."""
    preparation: str | None = None
    """What install does first (``builds it from source first, ...``); None: nothing."""
    local_users: tuple[tuple[str, str], ...] = ()
    """The users in environments on this machine: only there does apply install it
    (a cluster runs the engine's image)."""

    @property
    def missing(self) -> bool:
        return not self.installed and self.unchecked is None and self.version not in self.released


@dataclass(frozen=True)
class PinFindings:
    """What ``check`` says of the pinned versions, each at the line that pins it."""

    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)


def survey_versions(
    environments: Mapping[str, ResolvedEnvironment],
    *,
    cache: ListingCache,
    adapter_for: AdapterFor = get_adapter,
) -> list[PinnedVersion]:
    """Every (engine kind, version) the services of ``environments`` run, looked up once."""
    users: dict[tuple[EngineKind, str], list[tuple[str, str]]] = {}
    for env_name, env in sorted(environments.items()):
        for name, service in sorted(env.services.items()):
            key = (service.engine.kind, service.engine.version)
            users.setdefault(key, []).append((env_name, name))
    pins = []
    for (kind, version), who in users.items():
        pin = _survey(kind, version, tuple(who), cache=cache, adapter=adapter_for(kind))
        local = tuple(u for u in who if environments[u[0]].backend.kind == BackendKind.LOCAL)
        pins.append(replace(pin, local_users=local))
    return pins


def _survey(
    kind: EngineKind,
    version: str,
    users: tuple[tuple[str, str], ...],
    *,
    cache: ListingCache,
    adapter: EngineAdapter,
) -> PinnedVersion:
    if adapter.installed(version, cache_dir=cache.cache_dir) is not None:
        return PinnedVersion(kind, version, users, installed=True)
    preparation = None
    if isinstance(adapter, InstallsWork):
        preparation = adapter.preparation(version, cache_dir=cache.cache_dir)
    try:
        listing = cache.lookup(str(kind), wanted=version, ask=adapter.available_versions)
    except EngineError as exc:
        return PinnedVersion(
            kind, version, users, installed=False, unchecked=exc.message, preparation=preparation
        )
    return PinnedVersion(
        kind, version, users, installed=False, released=listing.versions, preparation=preparation
    )


def pin_findings(spec: FleetSpec, pins: list[PinnedVersion]) -> PinFindings:
    """Problems (never released), warnings (unchecked) and notes (to be installed),
    each placed where the version is written for each of its users. Pure."""
    found = PinFindings()
    for pin in pins:
        if pin.missing:
            target, message = found.problems, missing_message(pin)
        elif pin.unchecked is not None:
            target = found.warnings
            message = (
                f"cannot tell whether {pin.kind} version '{pin.version}' exists: "
                f"{pin.unchecked}; apply finds out when it installs it"
            )
        elif pin.preparation is not None and pin.local_users:
            target = found.notes
            message = f"{pin.kind} {pin.version} is not installed here: apply {pin.preparation}"
        else:
            continue
        users = pin.local_users if target is found.notes else pin.users
        for environment, service in users:
            at = written_at(
                spec, environment=environment, service=service, field=("engine", "version")
            )
            target.append(Finding(at, message))
    return found


def missing_message(pin: PinnedVersion) -> str:
    """Why a pinned version is refused, with what to write instead. Pure."""
    spelt = released_spelling(pin.version, pin.released)
    if spelt is not None:
        return (
            f"{pin.kind} version '{pin.version}' is released as '{spelt}': write \"{spelt}\" "
            f"(installs are kept under the version as written)"
        )
    near = nearest_versions(pin.version, list(pin.released))
    return (
        f"{pin.kind} version '{pin.version}' does not exist; nearest released: "
        f"{', '.join(near)} ({len(pin.released)} released; "
        f"`llmfleet versions {pin.kind} --all` lists them)"
    )


def released_spelling(version: str, released: tuple[str, ...]) -> str | None:
    """The released version equal to ``version`` by PEP 440 but written otherwise. Pure."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    for text in released:
        try:
            if Version(text) == wanted:
                return text
        except InvalidVersion:
            continue
    return None
