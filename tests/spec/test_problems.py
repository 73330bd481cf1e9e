"""Every kind of bad input gives exact `file:line:col: path: message` lines, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.errors import SpecError
from llmfleet.spec import load_spec, load_spec_text
from tests.spec.conftest import problems_of


def test_yaml_syntax_error_is_placed_at_the_yaml_mark() -> None:
    """A syntax error is one problem at the mark PyYAML reports, not a traceback."""
    text = """\
        services:
          chat:
            replicas: 2
           engine: x
        """
    assert problems_of(text) == [
        "fleet.yaml:4:4: invalid YAML: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block mapping at line 2)"
    ]


def test_unclosed_flow_sequence_is_a_syntax_error() -> None:
    assert problems_of("services: [a\n") == [
        "fleet.yaml:2:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1)"
    ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n", "---\n"])
def test_empty_file(text: str) -> None:
    """Nothing (or only null) is reported as an empty file, with the way out."""
    assert problems_of(text) == [
        "fleet.yaml: the file is empty; a spec needs at least `services:` "
        "(run `llmfleet init` for a commented example)"
    ]


@pytest.mark.parametrize(("text", "got"), [("- a\n", "a list"), ("chat\n", "'chat'")])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert problems_of(text) == [
        f"fleet.yaml:1:1: the top level must be a mapping (services:, ...), got {got}"
    ]


def test_duplicate_key_names_both_lines() -> None:
    text = """\
        services:
          chat:
            model: sim:echo
            engine: {kind: sim, version: "1"}
            replicas: 1
            replicas: 2
        """
    assert problems_of(text) == [
        "fleet.yaml:6:5: services.chat.replicas: duplicate key 'replicas' (first set at line 5)"
    ]


def test_unknown_keys_at_every_level_suggest_the_valid_name() -> None:
    """Unknown keys get a "did you mean" from the names valid at their own level."""
    text = """\
        verison: 1
        services:
          chat:
            extend: base
            model: {sorce: sim:echo}
            engine: {kind: sim, version: "1", argz: []}
        environments:
          staging:
            gatway: {port: 8081}
        """
    assert problems_of(text) == [
        "fleet.yaml:1:1: verison: unknown field 'verison'; did you mean 'version'?",
        "fleet.yaml:4:5: services.chat.extend: unknown field 'extend'; did you mean 'extends'?",
        "fleet.yaml:5:5: services.chat.model.source: required, but not set",
        "fleet.yaml:5:13: services.chat.model.sorce: unknown field 'sorce'; did you mean 'source'?",
        "fleet.yaml:6:39: services.chat.engine.argz: unknown field 'argz'; did you mean 'args'?",
        "fleet.yaml:9:5: environments.staging.gatway: unknown field 'gatway'; "
        "did you mean 'gateway'?",
    ]


def test_unknown_key_without_a_close_match_lists_the_valid_ones() -> None:
    text = """\
        services: {}
        zzz: 1
        """
    assert problems_of(text) == [
        "fleet.yaml:2:1: zzz: unknown field 'zzz'; valid fields: version, name, state, "
        "gateway, templates, services, environments, observability, costs, indexes, pipelines, "
        "agents"
    ]


def test_wrong_types_are_short_and_say_what_was_written() -> None:
    text = """\
        services:
          chat:
            model: sim:echo
            engine: {kind: sim, version: 1.10}
            slots: two
            labels: {tier: 1}
            resources: [1]
        """
    assert problems_of(text) == [
        "fleet.yaml:4:25: services.chat.engine.version: "
        'must be a string, got 1.10 (quote it: "1.10")',
        "fleet.yaml:5:5: services.chat.slots: must be an integer, got 'two'",
        'fleet.yaml:6:14: services.chat.labels.tier: must be a string, got 1 (quote it: "1")',
        "fleet.yaml:7:5: services.chat.resources: must be a mapping, got a list",
    ]


def test_replicas_below_one() -> None:
    text = """\
        services:
          chat:
            model: sim:echo
            engine: {kind: sim, version: "1"}
            replicas: 0
        """
    assert problems_of(text) == ["fleet.yaml:5:5: services.chat.replicas: must be >= 1, got 0"]


def test_patterns_are_explained_in_words() -> None:
    text = """\
        state: mysql://db
        services:
          chat:
            model: s3://bucket/model.gguf
            engine: {kind: sim, version: "1"}
            resources: {memory: 1GB, cpus: 0}
        """
    assert problems_of(text) == [
        "fleet.yaml:1:1: state: must be a sqlite:///PATH or postgresql://... URL, got 'mysql://db'",
        "fleet.yaml:4:5: services.chat.model.source: must start with pypi:, file:, hf: or sim:, "
        "got 's3://bucket/model.gguf'",
        "fleet.yaml:6:17: services.chat.resources.memory: must be a size such as 512Mi, 4Gi or 1G, "
        "got '1GB'",
        "fleet.yaml:6:30: services.chat.resources.cpus: must be > 0, got 0",
    ]


def test_unknown_engine_kind_suggests_the_closest() -> None:
    text = """\
        services:
          chat:
            model: sim:echo
            engine: {kind: llamcpp, version: "1"}
        """
    assert problems_of(text) == [
        "fleet.yaml:4:14: services.chat.engine.kind: unknown kind 'llamcpp' "
        "(expected llamacpp, vllm, sim, agent); did you mean 'llamacpp'?"
    ]


def test_missing_required_fields_point_at_the_service() -> None:
    text = """\
        services:
          chat:
            replicas: 2
        """
    assert problems_of(text) == [
        "fleet.yaml:2:3: services.chat.engine: required, but not set",
        "fleet.yaml:2:3: services.chat.model: required, but not set",
    ]


def test_missing_services_points_at_the_top() -> None:
    assert problems_of("name: demo\n") == ["fleet.yaml:1:1: services: required, but not set"]


def test_template_cycle_is_named() -> None:
    text = """\
        templates:
          a: {extends: b}
          b: {extends: a}
          c: {extends: a}
        services:
          chat: {extends: c}
        """
    assert problems_of(text) == ["fleet.yaml:2:7: templates.a.extends: template cycle: a -> b -> a"]


def test_template_extending_itself_is_a_cycle() -> None:
    text = """\
        templates:
          a: {extends: a}
        services: {}
        """
    assert problems_of(text) == ["fleet.yaml:2:7: templates.a.extends: template cycle: a -> a"]


def test_unknown_template_suggests_the_closest() -> None:
    text = """\
        templates:
          base: {model: sim:echo}
          other: {extends: nope}
        services:
          chat: {extends: bse}
          code: {extends: 3}
        """
    assert problems_of(text) == [
        "fleet.yaml:3:11: templates.other.extends: unknown template 'nope'; "
        "templates are: base, other",
        "fleet.yaml:5:10: services.chat.extends: unknown template 'bse'; did you mean 'base'?",
        "fleet.yaml:6:10: services.code.extends: must be the name of a template, got 3",
    ]


def test_override_of_a_service_that_does_not_exist() -> None:
    text = """\
        services:
          chat:
            model: sim:echo
            engine: {kind: sim, version: "1"}
        environments:
          production: {gateway: {port: 8080}}
          staging:
            gateway: {port: 8081}
            services:
              chta: {replicas: 1}
              extra: {extends: x}
        """
    assert problems_of(text) == [
        "fleet.yaml:10:7: environments.staging.services.chta: unknown service 'chta'; "
        "did you mean 'chat'?",
        "fleet.yaml:11:7: environments.staging.services.extra: unknown service 'extra'; "
        "services are: chat",
        "fleet.yaml:11:15: environments.staging.services.extra.extends: cannot be set in an "
        "environment; set it on the service",
    ]


def test_two_environments_on_one_gateway_port() -> None:
    text = """\
        services: {}
        environments:
          production: {gateway: {port: 9000}}
          staging: {gateway: {port: 9000}}
        """
    assert problems_of(text) == [
        "fleet.yaml:4:23: environments.staging.gateway.port: port 9000 is already the gateway "
        "port of environment 'production'; each environment needs its own port"
    ]


def test_environment_without_gateway_takes_the_top_level_port_and_clashes() -> None:
    text = """\
        services: {}
        environments:
          production: {}
          staging: {}
        """
    assert problems_of(text) == [
        "fleet.yaml:4:3: environments.staging.gateway.port: port 8080 is already the gateway "
        "port of environment 'production'; each environment needs its own port"
    ]


def test_top_level_port_clashing_with_the_default_staging_port() -> None:
    assert problems_of("gateway: {port: 8081}\nservices: {}\n") == [
        "fleet.yaml:1:11: gateway.port: port 8081 is also the default gateway port of the "
        "'staging' environment; choose another port, or declare `environments:` with a port "
        "for each"
    ]


def test_names_must_be_dns_labels() -> None:
    text = """\
        services:
          Chat_1:
            model: sim:echo
            engine: {kind: sim, version: "1"}
        environments:
          Prod: {}
        """
    label = "a DNS label: a-z, 0-9 and '-', at most 63 characters, no '-' at either end"
    assert problems_of(text) == [
        f"fleet.yaml:2:3: services.Chat_1: service name 'Chat_1' must be {label}",
        f"fleet.yaml:6:3: environments.Prod: environment name 'Prod' must be {label}",
    ]


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    """Top-level errors do not hide the services' ones; all come back, sorted."""
    text = """\
        gateway: {port: 99999}
        services:
          chat:
            model: sim:echo
            engine: {kind: sim, version: "1"}
            replicas: 0
        environments:
          production: {}
          staging:
            gateway: {port: 0}
            services:
              chat: {slots: 0}
        """
    assert problems_of(text) == [
        "fleet.yaml:1:11: gateway.port: must be <= 65535, got 99999",
        "fleet.yaml:6:5: services.chat.replicas: must be >= 1, got 0",
        "fleet.yaml:10:15: environments.staging.gateway.port: must be >= 1, got 0",
        "fleet.yaml:12:14: environments.staging.services.chat.slots: must be >= 1, got 0",
    ]


def test_a_bad_template_value_is_reported_once_at_the_template() -> None:
    """Shared by two services in two environments, the problem is one line, the template's."""
    text = """\
        templates:
          base:
            model: sim:echo
            engine: {kind: sim, version: "1"}
            slots: 0
        services:
          a: {extends: base}
          b: {extends: base}
        """
    assert problems_of(text) == ["fleet.yaml:5:5: templates.base.slots: must be >= 1, got 0"]


def test_unreadable_tag_and_self_referring_alias() -> None:
    text = """\
        x-loop: &a [*a]
        services:
          chat: !foo bar
        """
    assert problems_of(text) == [
        "fleet.yaml:1:13: x-loop[0]: a YAML alias refers to itself",
        "fleet.yaml:3:3: services.chat: cannot read this value: "
        "could not determine a constructor for the tag '!foo'",
        "fleet.yaml:3:3: services.chat: must be a mapping, got null",
    ]


def test_missing_file_hints_at_init(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "fleet.yaml")
    assert [p.render() for p in caught.value.problems] == [f"{tmp_path}/fleet.yaml: no such file"]
    assert caught.value.hint is not None and "llmfleet init" in caught.value.hint
    assert caught.value.exit_code == 2


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_bytes(b"services: {\xff}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert [p.render() for p in caught.value.problems] == [
        f"{path}:1:12: the file is not UTF-8 text (byte 0xff: invalid start byte)"
    ]


def test_error_message_lists_every_problem() -> None:
    """The exception text (what the CLI prints) carries every rendered line."""
    with pytest.raises(SpecError) as caught:
        load_spec_text("services:\n  a: {replicas: 0}\n")
    assert str(caught.value).startswith("3 problems in the spec:\n  fleet.yaml:2:3:")


def test_an_empty_environments_mapping_is_refused() -> None:
    assert problems_of("services: {}\nenvironments: {}\n") == [
        "fleet.yaml:2:1: environments: needs at least one environment "
        "(leave it out for production and staging)"
    ]


def test_mistakes_in_an_unused_template_are_reported() -> None:
    """A template nobody extends yet is still checked, without asking it for required fields."""
    text = """\
        templates:
          spare:
            engine: {kind: vlm}
            replics: 2
        services: {}
        """
    assert problems_of(text) == [
        "fleet.yaml:3:14: templates.spare.engine.kind: unknown kind 'vlm' "
        "(expected llamacpp, vllm, sim, agent); did you mean 'vllm'?",
        "fleet.yaml:4:5: templates.spare.replics: unknown field 'replics'; "
        "did you mean 'replicas'?",
    ]


def test_a_service_with_an_unknown_template_still_has_its_own_keys_checked() -> None:
    text = """\
        services:
          chat:
            extends: bse
            replicas: 0
        """
    assert problems_of(text) == [
        "fleet.yaml:3:5: services.chat.extends: unknown template 'bse'; no templates are defined",
        "fleet.yaml:4:5: services.chat.replicas: must be >= 1, got 0",
    ]
