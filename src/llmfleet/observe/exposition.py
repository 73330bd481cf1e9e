"""Prometheus text format: a small parser and renderer for the fleet endpoint; pure.

The fleet endpoint reads 100 replicas' ``/metrics`` every scrape, so this parses
only what it needs (sample lines and ``# TYPE``) with one regular expression per
line instead of building client-library objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One sample line, with the family it belongs to and the family's type."""

    family: str
    kind: str
    name: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class RawSample:
    """A parsed sample of an engine: its name, the declared type of its family."""

    name: str
    kind: str
    family: str
    labels: Labels
    value: float


def parse_text(text: str) -> Iterator[RawSample]:
    """Samples of a Prometheus text exposition; malformed lines are skipped."""
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, body, raw = match.groups()
        if name.endswith("_created"):  # creation timestamps: nobody downstream reads them
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        family, kind = family_of(name, types)
        labels = tuple((k, _unescape(v)) for k, v in _LABEL.findall(body)) if body else ()
        yield RawSample(name=name, kind=kind, family=family, labels=labels, value=value)


def family_of(name: str, types: Mapping[str, str]) -> tuple[str, str]:
    """The declared family of a sample name and its type ('untyped' if undeclared)."""
    if name in types:
        return name, types[name]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            base = name[: -len(suffix)]
            return base, types[base]
    return name, "untyped"


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _escape(value: str) -> str:
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) or abs(value) > 1e15 else str(int(value))


def render_samples(samples: Iterable[Sample], helps: Mapping[str, str] | None = None) -> str:
    """Text exposition, one ``# HELP``/``# TYPE`` block per family, families sorted."""
    families: dict[str, list[Sample]] = {}
    for sample in samples:
        families.setdefault(sample.family, []).append(sample)
    out: list[str] = []
    for family in sorted(families):
        group = families[family]
        help_text = (helps or {}).get(family, family.replace("_", " "))
        out.append(f"# HELP {family} {help_text}")
        out.append(f"# TYPE {family} {group[0].kind}")
        for s in group:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels)
            out.append(
                f"{s.name}{{{labels}}} {_number(s.value)}"
                if labels
                else f"{s.name} {_number(s.value)}"
            )
    return "\n".join(out) + "\n"
