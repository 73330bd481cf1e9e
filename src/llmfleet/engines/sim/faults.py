"""Fault settings of a sim process: what the CLI sets and ``POST /sim/faults`` changes.

The names are the CLI flags with underscores (``crash_after_tokens`` for
``--crash-after-tokens``), so a test reads one vocabulary in both places.
``parse_faults_update`` is pure: it validates a JSON body against the current
settings and returns the new settings, or raises ``FaultsError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast


class FaultsError(ValueError):
    """A faults update names an unknown field or carries a bad value."""


@dataclass(frozen=True)
class Faults:
    """Injected failures; ``None`` switches a token-count fault off.

    Token counts are process-wide: ``crash_after_tokens=5`` crashes after the
    fifth token emitted by any request, which is how a test makes a replica die
    in the middle of one particular stream.
    """

    crash_after_tokens: int | None = None
    hang_after_tokens: int | None = None
    error_rate: float = 0.0
    load_time: float = 0.0
    fail_start: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_COUNTS = ("crash_after_tokens", "hang_after_tokens")


def parse_faults_update(current: Faults, body: object) -> Faults:
    """The settings after applying ``body`` (a partial mapping) to ``current``; pure."""
    if not isinstance(body, Mapping):
        raise FaultsError("the body must be a JSON object of fault settings")
    known = {field.name for field in dataclasses.fields(Faults)}
    unknown = sorted(set(body) - known)
    if unknown:
        raise FaultsError(f"unknown fault setting(s) {unknown}; known: {sorted(known)}")
    changes = {name: _check_value(name, value) for name, value in body.items()}
    # each value was checked against its field's type by _check_value
    return dataclasses.replace(current, **cast("dict[str, Any]", changes))


def _check_value(name: str, value: object) -> object:
    if name in _COUNTS:
        if value is None or (_is_number(value) and isinstance(value, int) and value >= 0):
            return value
        raise FaultsError(f"{name} must be a whole number >= 0 or null, got {value!r}")
    if name == "fail_start":
        if isinstance(value, bool):
            return value
        raise FaultsError(f"fail_start must be true or false, got {value!r}")
    if not _is_number(value) or not isinstance(value, int | float) or value < 0:
        raise FaultsError(f"{name} must be a number >= 0, got {value!r}")
    if name == "error_rate" and value > 1:
        raise FaultsError(f"error_rate must be between 0 and 1, got {value!r}")
    return float(value)


def _is_number(value: object) -> bool:
    """True for ints and floats; JSON booleans are ints to Python and are refused."""
    return isinstance(value, int | float) and not isinstance(value, bool)
