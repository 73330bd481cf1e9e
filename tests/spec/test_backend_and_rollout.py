"""Where an environment runs (``backend``) and how a service's replicas are replaced
(``rollout``), its startup budget and its model volume."""

from __future__ import annotations

from textwrap import dedent

from llmfleet.spec import load_spec_text
from llmfleet.spec.placement import BackendKind, RolloutStrategy
from tests.spec.conftest import problems_of

SERVICE = """\
    services:
      chat:
        model: sim:echo
        engine: {kind: sim, version: "1.2.0"}
        replicas: 2
"""


def _spec(extra: str) -> str:
    return dedent(SERVICE) + dedent(extra)


def test_local_is_the_default_backend_of_every_environment() -> None:
    resolved = load_spec_text(dedent(SERVICE)).resolved
    assert {env.backend.kind for env in resolved.environments.values()} == {BackendKind.LOCAL}


def test_an_environment_chooses_kubernetes_with_context_and_namespace() -> None:
    text = _spec("""\
        environments:
          production:
            backend: {kind: kubernetes, context: prod-cluster, namespace: llm}
          staging:
            gateway: {port: 8081}
        """)
    resolved = load_spec_text(text).resolved
    production = resolved.environment("production").backend
    assert production.kind is BackendKind.KUBERNETES
    assert (production.context, production.namespace) == ("prod-cluster", "llm")
    assert production.gateway_replicas == 2
    assert resolved.environment("staging").backend.kind is BackendKind.LOCAL


def test_cluster_settings_on_a_local_backend_are_refused() -> None:
    problems = problems_of(
        _spec("""\
        environments:
          production:
            backend: {kind: local, namespace: llm}
        """)
    )
    assert any("backend" in p and "kind: kubernetes" in p for p in problems), problems


def test_two_kubernetes_environments_in_one_namespace_are_refused() -> None:
    problems = problems_of(
        _spec("""\
        environments:
          production:
            backend: {kind: kubernetes, context: c, namespace: llm}
          staging:
            gateway: {port: 8081}
            backend: {kind: kubernetes, context: c, namespace: llm}
        """)
    )
    assert any("namespace 'llm'" in p and "production" in p for p in problems), problems


def test_rollout_defaults_to_surge_one_new_pod_first() -> None:
    chat = load_spec_text(dedent(SERVICE)).resolved.environment("production").services["chat"]
    assert chat.rollout.strategy is RolloutStrategy.SURGE
    assert (chat.rollout.max_surge, chat.rollout.max_unavailable) == (1, 0)
    assert chat.rollout.startup_s == 600
    assert chat.model_volume.claim is None


def test_replace_takes_one_old_replica_down_first() -> None:
    text = dedent(SERVICE) + "    rollout: {strategy: replace, startup_s: 1800}\n"
    chat = load_spec_text(text).resolved.environment("production").services["chat"]
    assert (chat.rollout.max_surge, chat.rollout.max_unavailable) == (0, 1)
    assert chat.rollout.startup_s == 1800


def test_replace_with_a_surge_and_a_rollout_that_cannot_move_are_refused() -> None:
    surging = problems_of(dedent(SERVICE) + "    rollout: {strategy: replace, max_surge: 1}\n")
    assert any("max_surge" in p and "replace" in p for p in surging), surging
    stuck = problems_of(dedent(SERVICE) + "    rollout: {max_surge: 0, max_unavailable: 0}\n")
    assert any("cannot both be 0" in p for p in stuck), stuck


def test_rollout_and_model_volume_change_no_replica_hash() -> None:
    """Backend settings: a rollout or volume change must not replace every replica."""
    base = load_spec_text(dedent(SERVICE)).resolved.environment("production").services["chat"]
    text = dedent(SERVICE) + "    rollout: {max_surge: 2}\n    model_volume: {claim: models}\n"
    other = load_spec_text(text).resolved.environment("production").services["chat"]
    assert other.model_volume.claim == "models"
    assert base.runtime_hash() == other.runtime_hash()


def test_a_local_backend_written_out_with_its_defaults_loads_again() -> None:
    """A saved revision holds the backend as dumped, defaults included
    (``gateway_replicas: 2``, ``gpu_products: {}``): it must load again, or validate,
    promote and rollback of a local fleet fail on the revision they saved."""
    from llmfleet.spec.placement import BackendSpec

    dumped = BackendSpec().model_dump(mode="json")
    assert BackendSpec.model_validate(dumped).kind is BackendKind.LOCAL
