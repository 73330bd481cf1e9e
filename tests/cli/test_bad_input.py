"""Bad input through the real CLI: a clear message, a non-zero exit, nothing lost."""

from __future__ import annotations

from tests.fixtures.fleet import Fleet
from tests.fixtures.specs import one_sim_service

GOOD = one_sim_service(port="GATEWAY_PORT", staging_port="STAGING_PORT")


def assert_clean_failure(result: object, *, code: int, says: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    assert says in result.stderr, result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]


def test_check_reports_every_problem_with_file_line_and_column(fleet: Fleet) -> None:
    """Misspelt key, wrong kind and replicas 0 are all reported at once, exit 2."""
    fleet.write(
        GOOD.replace("replicas: 1", "replicas: 0\n    slotz: 2").replace(
            "kind: sim", "kind: llamcpp"
        )
    )
    result = fleet.run("check", check=False)
    assert_clean_failure(result, code=2, says="3 problems in the spec")
    assert "fleet.yaml:6:5: services.chat.replicas: must be >= 1, got 0" in result.stderr
    assert "did you mean 'slots'?" in result.stderr
    assert "did you mean 'llamacpp'?" in result.stderr


def test_yaml_syntax_error_is_located(fleet: Fleet) -> None:
    fleet.write("services:\n  chat: [unclosed\n")
    assert_clean_failure(fleet.run("check", check=False), code=2, says="fleet.yaml:")


def test_missing_spec_file_suggests_init(fleet: Fleet) -> None:
    assert_clean_failure(fleet.run("plan", check=False), code=2, says="llmfleet init")


def test_template_cycle_is_named(fleet: Fleet) -> None:
    fleet.write(
        GOOD.replace("services:", "templates:\n  a: {extends: b}\n  b: {extends: a}\nservices:")
    )
    assert_clean_failure(fleet.run("check", check=False), code=2, says="a -> b -> a")


def test_model_source_that_does_not_exist_fails_apply_cleanly(fleet: Fleet) -> None:
    """A file: model that is not there: apply fails before starting anything."""
    fleet.write(
        GOOD.replace("model: sim:tiny", "model: file:missing.gguf").replace(
            'kind: sim, version: "1.2.0"', 'kind: llamacpp, version: "11434.0.0"'
        )
    )
    result = fleet.run("apply", "--yes", check=False)
    assert_clean_failure(result, code=1, says="missing.gguf")
    assert fleet.replicas() == []
    assert "failed" in fleet.run("history").stdout


def test_vllm_without_a_gpu_says_so(fleet: Fleet) -> None:
    fleet.write(GOOD.replace('kind: sim, version: "1.2.0"', 'kind: vllm, version: "0.11.0"'))
    result = fleet.run("apply", "--yes", check=False)
    assert_clean_failure(result, code=1, says="GPU")


def test_unknown_engine_version_is_refused(fleet: Fleet) -> None:
    """A spec problem (exit 2) at its line, found before apply starts anything."""
    fleet.write(GOOD.replace('version: "1.2.0"', 'version: "9.9.9"'))
    assert_clean_failure(fleet.run("apply", "--yes", check=False), code=2, says="9.9.9")
    assert fleet.replicas() == []


def test_corrupted_state_database_is_a_clear_error_and_is_left_alone(fleet: Fleet) -> None:
    fleet.write(GOOD)
    state = fleet.root / ".llmfleet" / "state.db"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"this is not a database" * 100)
    result = fleet.run("plan", check=False)
    assert_clean_failure(result, code=1, says="state.db")
    assert state.read_bytes() == b"this is not a database" * 100


def test_unknown_environment_lists_the_known_ones(fleet: Fleet) -> None:
    fleet.write(GOOD)
    assert_clean_failure(fleet.run("plan", "--env", "prod", check=False), code=1, says="production")


def test_saved_plan_is_refused_after_the_spec_changed(fleet: Fleet) -> None:
    """plan --out then a spec edit: applying the stale plan is refused, nothing runs."""
    fleet.write(GOOD)
    plan_file = fleet.root / "plan.json"
    fleet.run("plan", "--out", str(plan_file))
    fleet.write(GOOD.replace("replicas: 1", "replicas: 2"))
    result = fleet.run("apply", str(plan_file), check=False)
    assert_clean_failure(result, code=1, says="changed since")
    assert fleet.replicas() == []


def test_saved_plan_applies_when_nothing_changed(fleet: Fleet) -> None:
    fleet.write(GOOD)
    plan_file = fleet.root / "plan.json"
    fleet.run("plan", "--out", str(plan_file))
    fleet.run("apply", str(plan_file))
    assert len(fleet.ready()) == 1


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_check_and_plan_warn_of_engine_env_that_changes_what_code_runs(fleet: Fleet) -> None:
    """LD_PRELOAD and PATH are warned at their line by check and plan; exit codes stay."""
    fleet.write(GOOD.replace('"1.2.0"}', '"1.2.0", env: {LD_PRELOAD: /x.so, PATH: /tmp}}'))
    expected = [
        f"warning: {fleet.spec}:5:49: services.chat.engine.env.LD_PRELOAD: the dynamic linker "
        "reads LD_PRELOAD: it can load other code into the engine; set it only if you mean to",
        f"warning: {fleet.spec}:5:68: services.chat.engine.env.PATH: PATH decides which "
        "programs the engine runs; set it only if you mean to",
    ]
    check = fleet.run("check")
    plan = fleet.run("plan")
    for result in (check, plan):
        assert all(_flat(line) in _flat(result.stderr) for line in expected), result.stderr
    assert "Plan: 2 to create" in plan.stdout
    assert fleet.run("plan", "--detailed-exitcode", check=False).returncode == 2


def test_plan_detailed_exitcode_tells_a_bad_spec_from_changes(fleet: Fleet) -> None:
    """With --detailed-exitcode, 2 means "there are changes" to a CI script, as in
    Terraform: a spec mistake exits 1 there, never 2 (it said 2, and a pipeline read
    a broken spec as changes to apply)."""
    fleet.write(GOOD.replace("{port: GATEWAY_PORT}", "{host: 0.0.0.0, port: GATEWAY_PORT}"))
    refused = fleet.run("plan", "--detailed-exitcode", check=False)
    assert_clean_failure(refused, code=1, says="environments.production.gateway.host")
    assert fleet.run("plan", check=False).returncode == 2  # without the flag: as check
    fleet.write("services: [")
    assert fleet.run("plan", "--detailed-exitcode", check=False).returncode == 1
    unknown = fleet.run("plan", "--detailed-exitcode", "--no-such-option", check=False)
    assert unknown.returncode == 1 and "No such option" in unknown.stderr, unknown.stderr
    assert fleet.run("plan", "--no-such-option", check=False).returncode == 2  # click's usage


def test_open_gateway_without_keys_is_refused_unless_allowed(fleet: Fleet) -> None:
    """0.0.0.0 and no API keys: check refuses; allow_unauthenticated turns it into a warning."""
    fleet.write(GOOD.replace("{port: GATEWAY_PORT}", "{host: 0.0.0.0, port: GATEWAY_PORT}"))
    refused = fleet.run("plan", check=False)
    assert_clean_failure(refused, code=2, says="environments.production.gateway.host")
    assert _flat(
        f"{fleet.spec}:8:26: environments.production.gateway.host: 0.0.0.0 accepts connections "
        "from other machines, but service chat needs no API key"
    ) in _flat(refused.stderr)
    fleet.write(
        GOOD.replace(
            "{port: GATEWAY_PORT}",
            "{host: 0.0.0.0, allow_unauthenticated: true, port: GATEWAY_PORT}",
        )
    )
    warned = fleet.run("plan")
    assert _flat(
        f"warning: {fleet.spec}:8:26: environments.production.gateway.host: 0.0.0.0 accepts "
        "connections from other machines and service chat needs no API key "
        "(allow_unauthenticated: true)"
    ) in _flat(warned.stderr)
