"""Pure parts of failover, resume, health and quotas, with an exact fake clock."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from llmfleet.gateway.deadline import within
from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.failover import RetryBudget
from llmfleet.gateway.health import Failure, HealthTracker, parse_waiting
from llmfleet.gateway.keys import KeyInfo, secret_from
from llmfleet.gateway.quotas import Quotas
from llmfleet.gateway.resume import EchoStripper, continuation_body, is_resumable, merge_usage
from llmfleet.gateway.series import LabelledCounter, LabelledHistogram
from llmfleet.gateway.stream import StreamState, UpstreamChunkError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chunk(
    content: str | None = None,
    *,
    cid: str = "a",
    finish: str | None = None,
    role: str | None = None,
) -> bytes:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return json.dumps(
        {
            "id": cid,
            "created": 1,
            "model": "m",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    ).encode()


def test_echo_stripper_handles_whole_split_and_absent_echoes() -> None:
    whole = EchoStripper(" a b")
    assert [whole.strip(d) for d in (" a b", " c")] == ["", " c"]
    split = EchoStripper(" a b")
    assert [split.strip(d) for d in (" a", " b c", " d")] == ["", " c", " d"]
    absent = EchoStripper(" a b")
    assert [absent.strip(d) for d in (" c", " a")] == [" c", " a"]


def test_continuation_body_for_chat_and_completions() -> None:
    chat = {"messages": [{"role": "user", "content": "q"}], "max_tokens": 10}
    fields = {"continue_final_message": True}
    out = continuation_body(True, chat, text=" x y", tokens=2, fields=fields)
    assert out["messages"][-1] == {"role": "assistant", "content": " x y"}
    assert out["max_tokens"] == 8 and out["continue_final_message"] is True
    assert chat["messages"] == [{"role": "user", "content": "q"}]
    comp = continuation_body(
        False, {"prompt": "p", "max_completion_tokens": 5}, text=" t", tokens=1, fields={}
    )
    assert comp == {"prompt": "p t", "max_completion_tokens": 4}


def test_resumable_only_for_single_plain_text_choices() -> None:
    assert is_resumable(True, {"messages": []})
    assert not is_resumable(True, {"messages": [], "n": 2})
    assert not is_resumable(True, {"messages": [], "tools": [{"type": "function"}]})
    assert not is_resumable(False, {"prompt": ["a", "b"]})


def test_merge_usage_moves_the_prefill_from_prompt_to_completion() -> None:
    usage = {"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22}
    assert merge_usage(usage, earlier_tokens=5, segments=2) == {
        "prompt_tokens": 10,
        "completion_tokens": 12,
        "total_tokens": 22,
    }
    assert merge_usage(usage, earlier_tokens=0, segments=1) == usage


def test_stream_state_splices_a_resumed_segment() -> None:
    """Resumed chunks get the first id, lose the echo and the second role."""
    state = StreamState(chat=True, model="m", include_usage=False)
    state.begin_segment()
    first = [chunk(role="assistant", content=""), chunk(" a"), chunk(" b")]
    assert [state.feed(c) for c in first] == first
    state.begin_segment()
    out = [
        state.feed(c)
        for c in (
            chunk(role="assistant", content="", cid="z"),
            chunk(" a b", cid="z"),
            chunk(" c", cid="z"),
            chunk(None, cid="z", finish="stop"),
        )
    ]
    assert out[0] is None and out[1] is None
    assert out[2] is not None and json.loads(out[2])["id"] == "a"
    assert json.loads(out[2])["choices"][0]["delta"] == {"content": " c"}
    assert state.text == " a b c" and state.tokens == 3 and state.finish_reason == "stop"


def test_stream_state_drops_usage_the_client_did_not_ask_for() -> None:
    state = StreamState(chat=True, model="m", include_usage=False)
    state.begin_segment()
    usage = json.dumps({"id": "a", "choices": [], "usage": {"prompt_tokens": 1}}).encode()
    assert state.feed(usage) is None
    assert state.usage == {"prompt_tokens": 1}


def test_health_ejects_and_probes_readmit_after_the_ejection_time() -> None:
    clock = FakeClock()
    changes: list[tuple[str, bool]] = []
    tracker = HealthTracker(
        clock=clock, eject_s=2.0, consecutive_5xx=2, on_change=lambda r, e: changes.append((r, e))
    )
    assert not tracker.report_failure("r", Failure.SERVER_ERROR)
    assert tracker.report_failure("r", Failure.SERVER_ERROR)
    assert tracker.is_ejected("r")
    clock.now += 1
    tracker.report_probe_ok("r")
    assert tracker.is_ejected("r")
    clock.now += 1.5
    tracker.report_probe_ok("r")
    assert not tracker.is_ejected("r")
    assert tracker.report_failure("r", Failure.CONNECT)
    assert changes == [("r", True), ("r", False), ("r", True)]


def test_parse_waiting_reads_the_engine_queue() -> None:
    text = b"# HELP x\nllamacpp:requests_deferred 3\nother 1\n"
    assert parse_waiting(text) == 3
    assert parse_waiting(b"nothing 1\n") is None


def test_retry_budget_allows_a_share_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, clock=clock, min_per_s=0.0, cap=2.0)
    assert budget.try_withdraw() and budget.try_withdraw()
    assert not budget.try_withdraw()
    budget.deposit()
    budget.deposit()
    assert budget.try_withdraw()
    assert not budget.try_withdraw()


def test_quotas_refill_with_the_clock() -> None:
    clock = FakeClock()
    quotas = Quotas(clock)
    key = KeyInfo(id="k", name="k", rpm=60, tpm=100)
    for _ in range(60):
        quotas.admit(key)
    with pytest.raises(ApiError) as refused:
        quotas.admit(key)
    assert refused.value.status == 429 and refused.value.retry_after_s == pytest.approx(1.0)
    clock.now += 1
    quotas.admit(key)
    quotas.charge(key, 160)
    clock.now += 1
    with pytest.raises(ApiError) as tokens:
        quotas.admit(key)
    assert tokens.value.retry_after_s == pytest.approx((1 - (-60 + 100 / 60)) / (100 / 60))


def test_secret_from_headers() -> None:
    assert secret_from({"Authorization": "Bearer sk-1"}) == "sk-1"
    assert secret_from({"api-key": "sk-2"}) == "sk-2"
    assert secret_from({}) is None


def test_absorb_records_what_feed_records() -> None:
    """A JSON answer's bursts (parsed as one array) leave the same state as feeding
    each payload: text, tokens, id, finish reason, usage; also across a resume and
    with a payload that is not JSON in the burst."""
    usage = json.dumps({"id": "a", "choices": [], "usage": {"prompt_tokens": 3}}).encode()
    segments = [
        [chunk(role="assistant", content=""), chunk(" a"), b"not json", chunk(" b")],
        [chunk(" a b", cid="z"), chunk(" c", cid="z"), chunk(None, cid="z", finish="stop"), usage],
    ]
    fed, absorbed = (StreamState(chat=True, model="m", include_usage=False) for _ in range(2))
    for segment in segments:
        fed.begin_segment()
        absorbed.begin_segment()
        for payload in segment:
            fed.feed(payload)
        assert absorbed.absorb(segment)
    assert absorbed.completion() == fed.completion()
    assert (absorbed.text, absorbed.tokens) == (" a b c", 3)
    assert not StreamState(chat=True, model="m", include_usage=False).absorb([usage])


@pytest.mark.parametrize("chat", [True, False])
def test_absorb_of_a_first_segment_matches_feed(chat: bool) -> None:
    """The inlined first-segment path records what ``feed`` does, chat and completions."""

    def piece(text: str | None, finish: str | None = None) -> bytes:
        if chat:
            return chunk(text, finish=finish)
        choice = {"index": 0, "text": text, "finish_reason": finish}
        return json.dumps({"id": "c", "created": 1, "model": "m", "choices": [choice]}).encode()

    burst = [piece("one"), piece(" two"), piece(None, "length"), b"[1]"]
    fed, absorbed = (StreamState(chat=chat, model="x", include_usage=False) for _ in range(2))
    fed.begin_segment()
    absorbed.begin_segment()
    for payload in burst:
        fed.feed(payload)
    absorbed.absorb(burst)
    assert absorbed.completion() == fed.completion()
    assert (absorbed.tokens, absorbed.finish_reason) == (2, "length")


def test_absorb_raises_on_an_error_event() -> None:
    """An engine's error event mid-answer fails the segment, as with ``feed``."""
    state = StreamState(chat=True, model="m", include_usage=False)
    state.begin_segment()
    with pytest.raises(UpstreamChunkError):
        state.absorb([chunk(" a"), json.dumps({"error": {"message": "oom"}}).encode()])
    assert state.text == " a"


async def test_within_returns_in_time_and_times_out_once() -> None:
    """``within`` returns what finished in time, turns its own expiry into
    TimeoutError (cancelling the work), and leaves an outside cancellation alone."""
    assert await within(1, asyncio.sleep(0, "done")) == "done"
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await within(0.01, slow())
    assert cancelled.is_set()
    task = asyncio.create_task(within(10, asyncio.sleep(10)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_lock_free_series_render_like_prometheus_client() -> None:
    """The request path's counters and histograms expose the same text as
    prometheus_client's for the same updates (creation times aside)."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LabelledCounter("x_requests", "Requests", ["service", "status"], ours)
    histogram = LabelledHistogram("x_seconds", "Latency", ["service"], ours, buckets=(0.1, 1))
    reference = Counter("x_requests", "Requests", ["service", "status"], registry=theirs)
    reference_h = Histogram("x_seconds", "Latency", ["service"], buckets=(0.1, 1), registry=theirs)
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.labels("chat").observe(value)
        reference_h.labels("chat").observe(value)
    counter.labels("chat", "200").inc(2)
    reference.labels("chat", "200").inc(2)
    with pytest.raises(ValueError, match="labels"):
        counter.labels("chat")

    def text(registry: CollectorRegistry) -> str:
        return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())

    assert text(ours) == text(theirs)
