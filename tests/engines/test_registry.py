"""Engine kind -> adapter, with a did-you-mean for typos."""

from __future__ import annotations

import pytest

from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.engines.registry import get_adapter, known_engines
from llmfleet.engines.vllm import VllmAdapter
from llmfleet.errors import EngineError
from llmfleet.spec.model import EngineKind


def test_known_engines_are_the_spec_kinds() -> None:
    assert known_engines() == ["agent", "llamacpp", "sim", "vllm"]


@pytest.mark.parametrize("kind", list(EngineKind))
def test_every_kind_has_an_adapter(kind: EngineKind) -> None:
    adapter = get_adapter(kind)
    assert adapter.kind == kind
    assert get_adapter(kind.value).kind == kind


def test_adapter_classes() -> None:
    assert isinstance(get_adapter("llamacpp"), LlamaCppAdapter)
    assert isinstance(get_adapter(" VLLM "), VllmAdapter)


@pytest.mark.parametrize(("typo", "guess"), [("llamacp", "llamacpp"), ("llama.cpp", "llamacpp"),
                                             ("vlm", "vllm"), ("simm", "sim")])
def test_unknown_kind_suggests_the_closest(typo: str, guess: str) -> None:
    with pytest.raises(EngineError, match=f"unknown engine kind '{typo}'; did you mean '{guess}'"):
        get_adapter(typo)


def test_unknown_kind_without_a_close_match_lists_all() -> None:
    with pytest.raises(EngineError) as caught:
        get_adapter("tensorrt")
    assert "did you mean" not in str(caught.value)
    assert "known engines: agent, llamacpp, sim, vllm" in str(caught.value)
