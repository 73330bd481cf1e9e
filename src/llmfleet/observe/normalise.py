"""Engine metrics onto llmfleet's common names; pure.

``normalise_metrics(kind, text, labels)`` turns one replica's ``/metrics`` text
into ``llmfleet_*`` samples through the engine adapter's ``MetricMap``:
llama-server's ``llamacpp:requests_deferred`` and vLLM's
``vllm:num_requests_waiting`` both become ``llmfleet_requests_waiting``, so one
dashboard serves every engine. Series the map does not name are dropped: an
engine upgrade that adds series changes nothing downstream.

Engine labels that clash with ours (vLLM's ``engine`` index) are kept under an
``engine_`` prefix; ours (service, replica, engine, ...) always win.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmfleet.engines.base import MetricMap
from llmfleet.engines.registry import get_adapter
from llmfleet.observe.exposition import Labels, RawSample, Sample, parse_text

PREFIX = "llmfleet_"
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def metric_map(kind: str) -> MetricMap:
    """The adapter's map of ``kind``; an unknown kind maps nothing."""
    try:
        return get_adapter(kind).metrics
    except Exception:  # an unknown engine kind exports nothing, never fails a scrape
        return MetricMap(names={})


def normalise_metrics(
    kind: str, text: str, labels: Mapping[str, str], *, mapping: MetricMap | None = None
) -> list[Sample]:
    """The ``llmfleet_*`` samples of one replica's metrics text; pure given ``mapping``."""
    names = (mapping or metric_map(kind)).names
    ours = tuple(labels.items())
    out: list[Sample] = []
    for raw in parse_text(text):
        if raw.name.endswith("_created"):
            continue
        target = _target(raw, names)
        if target is None:
            continue
        family, name = target
        out.append(
            Sample(
                family=family,
                kind=_kind(raw.kind),
                name=name,
                labels=_merge_labels(raw.labels, ours, labels),
                value=raw.value,
            )
        )
    return out


def _target(raw: RawSample, names: Mapping[str, str]) -> tuple[str, str] | None:
    """(family, sample name) in llmfleet terms, or None if the map does not name it."""
    if raw.name in names:  # counters declared with _total (llama-server), gauges
        mapped = PREFIX + names[raw.name]
        return mapped, mapped
    if raw.name.endswith("_total") and raw.name[:-6] in names:  # `vllm:prefix_cache_hits`
        return _counter(names[raw.name[:-6]])
    base = names.get(raw.family)
    if base is None:
        return None
    suffix = raw.name[len(raw.family) :]
    if raw.kind in ("histogram", "summary") and suffix in (*_HISTOGRAM_PARTS, ""):
        return PREFIX + base, PREFIX + base + suffix
    if raw.kind == "counter":  # family `vllm:prefix_cache_hits`, sample `..._total`
        return _counter(base)
    mapped = PREFIX + base + suffix
    return mapped, mapped


def _counter(base: str) -> tuple[str, str]:
    mapped = PREFIX + (base if base.endswith("_total") else base + "_total")
    return mapped, mapped


def _kind(kind: str) -> str:
    return kind if kind in ("counter", "gauge", "histogram", "summary") else "untyped"


def _merge_labels(engine: Labels, ours: Labels, names: Mapping[str, str]) -> Labels:
    kept = tuple((f"engine_{k}" if k in names else k, v) for k, v in engine)
    return ours + kept
