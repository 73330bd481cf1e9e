"""The sim's pure core: deterministic text, answers, parsing, faults, prefix cache."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfleet.engines.sim.answers import Answer, ChunkEncoder, ResponseHeader, plan_answer
from llmfleet.engines.sim.faults import Faults, FaultsError, parse_faults_update
from llmfleet.engines.sim.parsing import RequestError, parse_chat, parse_completion
from llmfleet.engines.sim.prefix_cache import BLOCK_WORDS, PrefixCache
from llmfleet.engines.sim.text import (
    MAX_NATURAL_TOKENS,
    MIN_NATURAL_TOKENS,
    VOCABULARY,
    answer_tokens,
    conversation_key,
    covered_tokens,
    embedding,
    natural_length,
    prompt_key,
    split_continuation,
)


def _plan(body: dict[str, object], *, chat: bool = True, **options: Any) -> Answer:
    settings_: dict[str, Any] = {"output_tokens": None, "echo_prefill": True, "context": 2048}
    request = parse_chat(body) if chat else parse_completion(body)
    return plan_answer(request, **{**settings_, **options})


def _chat(*messages: tuple[str, str], **extra: object) -> dict[str, object]:
    return {"messages": [{"role": r, "content": c} for r, c in messages], **extra}


def test_tokens_are_one_vocabulary_word_with_a_leading_space() -> None:
    """Every token splits back into exactly one word, which prefill matching relies on."""
    tokens = answer_tokens(conversation_key(["x"], None), 0, 200)
    assert all(token in VOCABULARY and token.split() == [token[1:]] for token in tokens)


def test_token_ranges_compose_across_hash_blocks() -> None:
    """Any slice of the sequence equals the same slice of a longer generation."""
    key = conversation_key(["hello"], 7)
    whole = answer_tokens(key, 0, 200)
    assert answer_tokens(key, 50, 130) == whole[50:130]
    assert answer_tokens(key, 10, 10) == []


def test_natural_length_is_bounded_and_seed_changes_the_answer() -> None:
    keys = [conversation_key([f"q{i}"], None) for i in range(100)]
    assert all(MIN_NATURAL_TOKENS <= natural_length(k) <= MAX_NATURAL_TOKENS for k in keys)
    assert len({natural_length(k) for k in keys}) > 5
    assert conversation_key(["a"], 1) != conversation_key(["a"], 2)
    assert conversation_key(["ab", "c"], 0) != conversation_key(["a", "bc"], 0)


def test_covered_tokens_counts_matching_leading_words() -> None:
    key = conversation_key(["q"], None)
    tokens = answer_tokens(key, 0, 5)
    assert covered_tokens(key, "".join(tokens[:3])) == 3
    assert covered_tokens(key, "".join(tokens[:3]).strip()) == 3
    assert covered_tokens(key, tokens[0] + " nonsense" + tokens[2]) == 1
    assert covered_tokens(key, "") == 0


@settings(max_examples=60, deadline=None)
@given(question=st.text(min_size=0, max_size=40), data=st.data())
def test_prefilled_answer_continues_the_uninterrupted_one(
    question: str, data: st.DataObject
) -> None:
    """Interrupt after k tokens, continue with them as prefill: the rest is identical."""
    full = _plan(_chat(("user", question)))
    k = data.draw(st.integers(0, len(full.tokens)))
    prefill = "".join(full.tokens[:k])
    resumed = _plan(_chat(("user", question), ("assistant", prefill)), echo_prefill=False)
    assert resumed.tokens == full.tokens[k:]
    assert resumed.finish_reason == "stop"
    echoed = _plan(_chat(("user", question), ("assistant", prefill)))
    assert echoed.echo == prefill and echoed.tokens == full.tokens[k:]
    vllm_style = _plan(
        _chat(("user", question), ("assistant", prefill), continue_final_message=True)
    )
    assert vllm_style.echo == "" and vllm_style.tokens == full.tokens[k:]


@settings(max_examples=60, deadline=None)
@given(prompt=st.text(min_size=0, max_size=40), data=st.data())
def test_completion_prompt_extended_by_its_answer_continues_it(
    prompt: str, data: st.DataObject
) -> None:
    """The gateway resumes a completion by appending the text so far to the prompt."""
    full = _plan({"prompt": prompt}, chat=False)
    k = data.draw(st.integers(0, len(full.tokens)))
    resumed = _plan({"prompt": prompt + "".join(full.tokens[:k])}, chat=False)
    assert resumed.tokens == full.tokens[k:]
    assert resumed.echo == ""


def test_split_continuation_leaves_ordinary_prompts_alone() -> None:
    assert split_continuation("tell me a story", None) == ("tell me a story", "")
    word = VOCABULARY[0]
    assert split_continuation("ends with" + word, None) == ("ends with" + word, "")
    tokens = answer_tokens(prompt_key("hi", 3), 0, 4)
    assert split_continuation("hi" + "".join(tokens), 3) == ("hi", "".join(tokens))


def test_max_tokens_caps_with_finish_reason_length() -> None:
    full = _plan(_chat(("user", "q")))
    capped = _plan(_chat(("user", "q"), max_tokens=3))
    assert capped.tokens == full.tokens[:3] and capped.finish_reason == "length"
    assert _plan(_chat(("user", "q"), max_tokens=0)).tokens == ()
    exact = _plan(_chat(("user", "q"), max_tokens=len(full.tokens)))
    assert exact.finish_reason == "stop"


def test_output_tokens_fixes_the_length_and_context_caps_it() -> None:
    assert len(_plan(_chat(("user", "q")), output_tokens=100).tokens) == 100
    tight = _plan(_chat(("user", "one two three")), output_tokens=100, context=64)
    assert len(tight.tokens) == 61 and tight.finish_reason == "length"
    with pytest.raises(RequestError, match="more than the context"):
        _plan(_chat(("user", "word " * 70)), context=64)


def test_prompt_tokens_count_words_of_every_message() -> None:
    answer = _plan(_chat(("system", "be brief"), ("user", "hi there you"), ("assistant", "x y")))
    assert answer.prompt_tokens == 7


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 3}]}, "content"),
        (_chat(("user", "x"), n=2), "n=1"),
        (_chat(("user", "x"), stream="yes"), "stream"),
        (_chat(("user", "x"), max_tokens=-1), "max_tokens"),
        (_chat(("user", "x"), seed="s"), "seed"),
        (_chat(("user", "x"), continue_final_message=True), "assistant"),
    ],
)
def test_bad_chat_bodies_are_refused_with_the_field_named(body: object, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_chat(body)


def test_content_parts_and_prompt_lists_are_accepted() -> None:
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a b"}]}]}
    assert parse_chat(parts).prompt_words == ("a", "b")
    assert parse_completion({"prompt": ["a b c"]}).prompt_words == ("a", "b", "c")
    with pytest.raises(RequestError, match="prompt"):
        parse_completion({"prompt": ["a", "b"]})


def test_faults_update_merges_and_validates() -> None:
    faults = parse_faults_update(Faults(), {"crash_after_tokens": 5, "error_rate": 0.5})
    assert faults == Faults(crash_after_tokens=5, error_rate=0.5)
    assert parse_faults_update(faults, {"crash_after_tokens": None}).crash_after_tokens is None
    for bad in (
        {"crash": 1},
        {"error_rate": 2},
        {"hang_after_tokens": -1},
        {"hang_after_tokens": True},
        {"load_time": "x"},
        {"fail_start": 1},
        [],
    ):
        with pytest.raises(FaultsError):
            parse_faults_update(faults, bad)


def test_prefix_cache_hits_whole_blocks_of_a_shared_prefix() -> None:
    cache = PrefixCache(capacity_blocks=100)
    shared = [f"w{i}" for i in range(3 * BLOCK_WORDS + 5)]
    assert cache.admit(shared) == 0
    assert cache.admit([*shared, "more", "words"]) == 3 * BLOCK_WORDS
    assert cache.admit(["other", *shared]) == 0


def test_prefix_cache_forgets_least_recently_used_blocks() -> None:
    cache = PrefixCache(capacity_blocks=2)
    first, second = ["a"] * BLOCK_WORDS, ["b"] * BLOCK_WORDS
    cache.admit(first)
    cache.admit(second)
    cache.admit(["c"] * BLOCK_WORDS)
    assert cache.admit(first) == 0
    assert cache.admit(["c"] * BLOCK_WORDS) == BLOCK_WORDS


def test_embeddings_are_deterministic_unit_vectors() -> None:
    vector = embedding("hello", 100)
    assert len(vector) == 100 and math.isclose(sum(v * v for v in vector), 1.0)
    assert vector == embedding("hello", 100) and vector != embedding("hullo", 100)


@pytest.mark.parametrize("chat", [True, False])
def test_stream_chunks_are_valid_openai_json(chat: bool) -> None:
    encoder = ChunkEncoder(ResponseHeader(id="x-1", created=5, model='m"q', chat=chat))
    chunks = [
        encoder.content(VOCABULARY[3]),
        encoder.content('odd "text"\n'),
        encoder.finish("stop"),
        encoder.usage({"prompt_tokens": 1}),
    ]
    if chat:
        chunks.append(encoder.role())
    for chunk in chunks:
        assert chunk.startswith("data: ") and chunk.endswith("\n\n")
        body = json.loads(chunk[6:])
        assert body["id"] == "x-1" and body["model"] == 'm"q'
    content = json.loads(chunks[1][6:])["choices"][0]
    assert (content["delta"]["content"] if chat else content["text"]) == 'odd "text"\n'
