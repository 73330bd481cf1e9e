"""The local backend as a ``Backend``: replicas as processes under this machine's agent.

Apply here is replica by replica. Order: the gateway's port is checked (one that
another process holds refuses the apply before anything starts), gateway config
(in-place updates), then the gateway and the new replicas spawn, then rolling
replacements within each service's ``rollout`` bounds (``backends.local.rolling``;
by default create-before-destroy, one by one), then deletes,
then the gateway is waited for. A replacement whose new replica fails keeps the
old one serving and stops the apply. Engines and models
are prepared on this machine first (``apply.prepare``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from llmfleet.apply.agents import agent_environment, revoke_stale_agent_keys
from llmfleet.apply.prepare import Prepared, prepare_service, replica_spec
from llmfleet.backends.local.client import LocalBackend
from llmfleet.backends.local.port_holders import PortHolder, port_holder
from llmfleet.backends.local.rolling import replace_replicas
from llmfleet.engines.registry import get_adapter
from llmfleet.errors import FleetError, PortInUseError
from llmfleet.plan.diff import plan_changes, plan_destroy
from llmfleet.plan.model import Action, Op, Plan, SeenRuntime, Target
from llmfleet.plan.seen import ActualEnvironment, seen_runtime
from llmfleet.spec.model import ResolvedEnvironment

if TYPE_CHECKING:
    from llmfleet.apply.executor import ApplyContext

READY_TIMEOUT_S = 300.0
PORT_FIX = "stop that process, or set another gateway.port for the environment"
DRAIN_TIMEOUT_S = 60.0


class LocalFleet:
    """``Backend`` over the agent's client (``runtime``), which the CLI shares for
    what only this machine has (``down``, the agent's problems)."""

    kind = "local"

    def __init__(self, runtime: LocalBackend) -> None:
        self.runtime = runtime

    def actual(self, environment: str) -> ActualEnvironment:
        """Replicas, the gateway and the config the agent holds (empty: no agent)."""
        runtime = self.runtime
        if not runtime.running():
            return ActualEnvironment()
        config = runtime.environment_config(environment)
        gateways = [g for g in runtime.gateways() if g.environment == environment]
        return ActualEnvironment(
            replicas=runtime.list_replicas(environment),
            services=config.get("services", {}),
            gateway=gateways[0] if gateways else None,
            observability=config.get("observability"),
            costs=config.get("costs"),
        )

    def seen(self, environment: str) -> SeenRuntime:
        return seen_runtime(self.actual(environment))

    def plan(
        self,
        desired: ResolvedEnvironment,
        *,
        serial: int,
        spec_hash: str,
        recorded_services: frozenset[str] = frozenset(),
        recorded_replicas: Mapping[str, int] | None = None,
    ) -> Plan:
        actual = self.actual(desired.name)
        plan = plan_changes(
            desired,
            actual,
            serial=serial,
            spec_hash=spec_hash,
            recorded_services=recorded_services,
            recorded_replicas=recorded_replicas,
        )
        holder = gateway_port_holder(plan, desired, actual)
        if holder is None:
            return plan
        note = f"{holder.describe()}: apply will fail until it is free ({PORT_FIX})"
        return replace(plan, notes=(*plan.notes, note))

    def plan_destroy(self, environment: str, *, serial: int) -> Plan:
        return plan_destroy(environment, self.actual(environment), serial=serial)

    def before_apply(self) -> None:
        # Started (or restarted, adopting what its table lists) before planning: a plan
        # made while the agent was down saw no replicas, and carrying it out doubled them.
        self.runtime.ensure_agent()

    def carry_out(self, plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> None:
        try:
            carry_out_locally(self.runtime, plan, desired, ctx)
        finally:  # a replaced or failed agent replica's key is taken back, whatever happened
            if plan.has_changes:
                self._take_back_agent_keys(plan.environment, ctx)

    def _take_back_agent_keys(self, environment: str, ctx: ApplyContext) -> None:
        """Revoke the keys of agent replicas that no longer run; a failure to is said,
        never raised over the apply's own outcome."""
        try:
            if not self.runtime.running():  # its processes may still run, to be adopted
                return
            live = {r.replica_id for r in self.runtime.list_replicas(environment)}
            revoke_stale_agent_keys(ctx.store, environment=environment, live=live)
        except FleetError as exc:
            ctx.progress(f"warning: agent keys of stopped replicas not revoked yet: {exc}")

    def gateway_url(self, desired: ResolvedEnvironment) -> str:
        return f"http://{desired.gateway.host}:{desired.gateway.port}"

    def gateway_url_from_here(self, desired: ResolvedEnvironment) -> str:
        return self.gateway_url(desired)

    def close(self) -> None:
        """The runtime is the workspace's; it closes it."""


def carry_out_locally(
    runtime: LocalBackend, plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext
) -> None:
    """The local apply; see the module docstring for its order."""
    if not plan.has_changes:
        return
    runtime.ensure_agent()
    _refuse_taken_gateway_port(runtime, plan, desired)
    prepared = _prepare_all(plan, desired, ctx)
    _push_service_config(runtime, plan, desired, ctx)
    # The gateway spawns first (a port taken since the check fails it before any
    # replica runs), new replicas alongside (an engine takes longest to load), then
    # both are waited for: neither waits for the other to start.
    _start_gateway(runtime, plan, desired, ctx)
    started = _start_new_replicas(runtime, plan, prepared, ctx)
    _await_new_replicas(runtime, started, ctx)
    replace_replicas(runtime, plan, prepared, ctx)  # within each service's rollout bounds
    for action in _actions(plan, Op.DELETE, Target.REPLICA):
        assert action.replica_id is not None
        ctx.progress(f"- {action.address}: draining {action.replica_id}")
        runtime.stop_replica(action.replica_id, drain_timeout_s=DRAIN_TIMEOUT_S)
        ctx.done.append(f"- {action.address}")
    _finish_gateway(runtime, plan, ctx)
    if not desired.services:
        runtime.forget_environment(plan.environment)


def gateway_port_holder(
    plan: Plan, desired: ResolvedEnvironment, actual: ActualEnvironment
) -> PortHolder | None:
    """Who holds the port of a gateway ``plan`` would start, when another process does
    (this environment's own gateway is replaced by the agent: not a holder)."""
    if not [a for a in plan.actions if a.target is Target.GATEWAY and a.op is not Op.DELETE]:
        return None
    gateway = desired.gateway
    if actual.gateway is not None and actual.gateway.port == gateway.port:
        return None
    return port_holder(gateway.port, gateway.host)


def _refuse_taken_gateway_port(
    runtime: LocalBackend, plan: Plan, desired: ResolvedEnvironment
) -> None:
    """Before anything is prepared or started: a gateway that cannot listen would leave
    replicas running that no client can reach."""
    environment = desired.name
    gateways = [g for g in runtime.gateways() if g.environment == environment]
    actual = ActualEnvironment(gateway=gateways[0] if gateways else None)
    holder = gateway_port_holder(plan, desired, actual)
    if holder is not None:
        raise PortInUseError(
            f"the gateway of {environment} cannot listen: {holder.describe()}; nothing was "
            "started",
            hint=PORT_FIX,
        )


def _actions(plan: Plan, op: Op, target: Target) -> list[Action]:
    return [a for a in plan.actions if a.op is op and a.target is target]


def _prepare_all(
    plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext
) -> dict[str, Prepared]:
    names = {
        a.service
        for a in plan.actions
        if a.target is Target.REPLICA and a.op in (Op.CREATE, Op.REPLACE) and a.service
    }
    prepared = {
        name: prepare_service(
            name,
            desired.services[name],
            settings=ctx.settings,
            store=ctx.store,
            spec_dir=ctx.spec_dir,
            progress=ctx.progress,
        )
        for name in sorted(names)
    }
    return {name: _with_agent_environment(p, desired, ctx) for name, p in prepared.items()}


def _with_agent_environment(
    prepared: Prepared, desired: ResolvedEnvironment, ctx: ApplyContext
) -> Prepared:
    """An agent's replicas get its gateway, a key each, its indexes and secrets."""
    replica_env = agent_environment(
        prepared.name,
        prepared.service,
        environment=desired.name,
        gateway=desired.gateway,
        store=ctx.store,
        spec_dir=ctx.spec_dir,
        observability=desired.observability,
    )
    return prepared if replica_env is None else replace(prepared, replica_env=replica_env)


def _push_service_config(
    runtime: LocalBackend, plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext
) -> None:
    """Tell the gateway the services' settings; this is what in-place updates change."""
    services = {name: svc.model_dump(mode="json") for name, svc in desired.services.items()}
    continuation = {
        name: dict(get_adapter(svc.engine.kind).continuation_fields())
        for name, svc in desired.services.items()
    }
    runtime.set_environment_config(
        plan.environment,
        services=services,
        continuation=continuation,
        observability=desired.observability.model_dump(mode="json"),
        costs=desired.costs.model_dump(mode="json"),
        spec_file=str(ctx.spec_file.resolve()) if ctx.spec_file else None,
    )
    ctx.done.extend(f"~ {a.address}" for a in _actions(plan, Op.UPDATE, Target.SERVICE))
    ctx.done.extend(f"~ {a.address}" for a in _actions(plan, Op.UPDATE, Target.OBSERVABILITY))
    ctx.done.extend(f"~ {a.address}" for a in _actions(plan, Op.UPDATE, Target.COSTS))


def _start_new_replicas(
    runtime: LocalBackend, plan: Plan, prepared: dict[str, Prepared], ctx: ApplyContext
) -> list[tuple[Action, str]]:
    started: list[tuple[Action, str]] = []
    for action in _actions(plan, Op.CREATE, Target.REPLICA):
        assert action.service is not None and action.slot is not None
        spec = replica_spec(plan.environment, action.slot, prepared[action.service])
        try:
            runtime.start_replica(spec)
        except FleetError:
            _stop_unready(runtime, ctx, [rid for _, rid in started])
            raise
        started.append((action, spec.replica_id))
        ctx.progress(f"+ {action.address}: starting {spec.replica_id}")
    return started


def _await_new_replicas(
    runtime: LocalBackend, started: list[tuple[Action, str]], ctx: ApplyContext
) -> None:
    if not started:
        return
    try:
        runtime.wait_ready([rid for _, rid in started], timeout_s=READY_TIMEOUT_S)
    except FleetError:
        _stop_unready(runtime, ctx, [rid for _, rid in started])
        raise
    ctx.done.extend(f"+ {action.address}" for action, _ in started)


def _stop_unready(runtime: LocalBackend, ctx: ApplyContext, replica_ids: list[str]) -> None:
    """Stop new replicas that never became ready (a crash loop would burn the CPU)."""
    ready = {r.replica_id for r in runtime.list_replicas() if r.state == "ready"}
    for replica_id in replica_ids:
        if replica_id not in ready:
            runtime.stop_replica(replica_id, drain_timeout_s=0)


def _start_gateway(
    runtime: LocalBackend, plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext
) -> None:
    wanted = [a for a in plan.actions if a.target is Target.GATEWAY and a.op is not Op.DELETE]
    if not wanted:
        return
    gateway = desired.gateway
    ctx.progress(f"gateway: listening on http://{gateway.host}:{gateway.port}")
    runtime.run_gateway(
        plan.environment,
        host=gateway.host,
        port=gateway.port,
        state_url=ctx.state_url,
        state_base_dir=str(ctx.spec_dir),
    )


def _finish_gateway(runtime: LocalBackend, plan: Plan, ctx: ApplyContext) -> None:
    """Stop a deleted gateway, or wait until a started one answers."""
    if _actions(plan, Op.DELETE, Target.GATEWAY):
        runtime.stop_gateway(plan.environment)
        ctx.done.append("- gateway")
    elif [a for a in plan.actions if a.target is Target.GATEWAY]:
        runtime.wait_gateway(plan.environment, timeout_s=30.0)
        ctx.done.append("+ gateway")
