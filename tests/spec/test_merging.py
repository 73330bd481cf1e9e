"""The deep-merge rules the README quotes, and their invariants."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmfleet.spec.merging import deep_merge, merge_layers

keys = st.sampled_from(["a", "b", "c", "engine", "labels"])
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
mappings = st.dictionaries(keys, values, max_size=4)


def test_mappings_merge_key_by_key() -> None:
    base = {"engine": {"kind": "llamacpp", "version": "1"}, "replicas": 2}
    assert deep_merge(base, {"engine": {"version": "2"}}) == {
        "engine": {"kind": "llamacpp", "version": "2"},
        "replicas": 2,
    }


def test_lists_and_scalars_replace() -> None:
    base = {"engine": {"args": ["-a", "-b"]}, "replicas": 2}
    merged = deep_merge(base, {"engine": {"args": ["-c"]}, "replicas": 3})
    assert merged == {"engine": {"args": ["-c"]}, "replicas": 3}


def test_null_removes_a_key() -> None:
    base = {"resources": {"cpus": 2, "memory": "4Gi"}, "labels": {"a": "1"}}
    merged = deep_merge(base, {"resources": {"cpus": None}, "labels": None})
    assert merged == {"resources": {"memory": "4Gi"}}


def test_extends_is_not_inherited() -> None:
    assert deep_merge({"replicas": 1}, {"extends": "base"}) == {"replicas": 1}


def test_a_mapping_replaces_a_scalar_and_the_reverse() -> None:
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({"a": {"b": 2}}, {"a": 1}) == {"a": 1}


def test_provenance_points_at_the_layer_that_wrote_each_value() -> None:
    merged = merge_layers(
        [
            ({"engine": {"kind": "sim", "version": "1"}}, ("templates", "base")),
            ({"engine": {"version": "2"}, "extends": "base"}, ("services", "chat")),
        ],
        home=("services", "chat"),
    )
    assert merged.origin_of(("engine", "kind")) == ("templates", "base", "engine", "kind")
    assert merged.origin_of(("engine", "version")) == ("services", "chat", "engine", "version")
    assert merged.origin_of(("model",)) == ("services", "chat", "model")
    assert "extends" not in merged.data


def test_replacing_a_mapping_forgets_where_its_parts_came_from() -> None:
    merged = merge_layers(
        [
            ({"engine": {"kind": "sim"}}, ("templates", "base")),
            ({"engine": ["odd"]}, ("services", "chat")),
        ],
        home=("services", "chat"),
    )
    assert merged.origin_of(("engine", 0)) == ("services", "chat", "engine", 0)


@settings(max_examples=50)
@given(mappings)
def test_an_empty_override_is_identity(base: dict[str, Any]) -> None:
    assert deep_merge(base, {}) == base


@settings(max_examples=50)
@given(mappings, mappings)
def test_merge_never_mutates_its_inputs(base: dict[str, Any], override: dict[str, Any]) -> None:
    before = copy.deepcopy((base, override))
    deep_merge(base, override)
    assert (base, override) == before


@settings(max_examples=50)
@given(mappings, mappings)
def test_merging_twice_changes_nothing_more(base: dict[str, Any], override: dict[str, Any]) -> None:
    """Idempotence: applying the same override again is a no-op."""
    once = deep_merge(base, override)
    assert deep_merge(once, override) == once


@settings(max_examples=50)
@given(mappings, mappings)
def test_every_key_the_override_sets_wins(base: dict[str, Any], override: dict[str, Any]) -> None:
    merged = deep_merge(base, override)
    for key, value in override.items():
        if key == "extends":
            continue
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert merged[key] == value
