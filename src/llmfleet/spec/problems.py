"""What is wrong with a spec, in short lines a person can act on; pure.

A ``Finding`` is a problem before it has a place in a file: the path in the
document where the offending value was written, and a message. ``Locations``
later gives it a line and a column (``spec.locations``).

Pydantic's messages are rewritten here into short human ones
(``must be >= 1, got 0``), and misspelt keys and choices get a
"did you mean" from ``difflib`` against the names valid at that level.
"""

from __future__ import annotations

import difflib
import re
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from llmfleet.spec import model as m
from llmfleet.spec.resources import MEMORY_PATTERN

Key = str | int
DocPath = tuple[Key, ...]


@dataclass(frozen=True)
class Finding:
    """One problem at a document path, e.g. ``("services", "chat", "replicas")``."""

    path: DocPath
    message: str


_PATTERNS = {
    m.NAME_PATTERN: "must be a DNS label (a-z, 0-9 and '-', at most 63 characters)",
    MEMORY_PATTERN: "must be a size such as 512Mi, 4Gi or 1G",
    m.SOURCE_PATTERN: "must start with pypi:, file:, hf: or sim:",
    m.SHA256_PATTERN: "must be 64 lowercase hex digits",
    m.STATE_PATTERN: "must be a sqlite:///PATH or postgresql://... URL",
    m.VERSION_PATTERN: "must be a version such as 1.2.0 or 11434.0.0 "
    "(letters, digits, '.', '_', '+' and '-')",
    m.ENV_NAME_PATTERN: "must be an environment variable name "
    "(letters, digits and '_', not starting with a digit)",
    m.NO_NUL_PATTERN: "must not contain a NUL character (no program can be given one)",
}
_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def dotted(path: Sequence[Key]) -> str:
    """``("services", "chat", "engine", "args", 1)`` -> ``services.chat.engine.args[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class WrittenNumber:
    """A number as the file spells it (``1.20``) and as YAML read it (1.2)."""

    text: str
    value: int | float


def respell_numbers(
    findings: Iterable[Finding], written: Mapping[DocPath, WrittenNumber]
) -> list[Finding]:
    """Findings whose messages show a number as the file spells it, so a suggestion keeps
    the user's digits: ``got 1.20 (quote it: "1.20")``, never ``"1.2"``.

    Messages are written from the value YAML read (``describe``), before anyone knows
    how it was spelt; this puts the spelling back at the one place a number is quoted.
    """
    out = []
    for finding in findings:
        number = written.get(finding.path)
        shown = None if number is None else describe(number.value)
        if number is None or number.text == shown or len(number.text) > 40:
            out.append(finding)
            continue
        message = finding.message.replace(f"got {shown}", f"got {number.text}")
        message = message.replace(f'quote it: "{shown}"', f'quote it: "{number.text}"')
        out.append(Finding(finding.path, message))
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest choice, or ``""`` if none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown template 'bse'; did you mean 'base'?``, else the names there are."""
    names = list(known)
    if not names:
        return f"unknown {kind} '{name}'; no {kind}s are defined"
    hint = did_you_mean(name, names) or f"; {kind}s are: {', '.join(names)}"
    return f"unknown {kind} '{name}'{hint}"


def describe(value: Any) -> str:
    """A value as the user wrote it in YAML, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int) and 0 < sys.get_int_max_str_digits() < decimal_digits(value):
        return f"an integer of {decimal_digits(value)} digits"  # str() refuses it
    return str(value)


def decimal_digits(value: int) -> int:
    """How many decimal digits ``value`` has, without ``str()`` (limited to 4300 digits)."""
    magnitude = abs(value)
    digits = int((magnitude.bit_length() - 1) * 0.30102999566398120) + 1 if magnitude else 1
    return digits + 1 if magnitude >= 10**digits else digits


def error_loc(error: ErrorDetails) -> tuple[Key, ...]:
    """The error's place in the document: a bad mapping key is placed at the key itself."""
    loc = tuple(error["loc"])
    return loc[:-1] if loc and loc[-1] == "[key]" else loc


def rewrite_errors(
    exc: PydanticValidationError, *, model: type[BaseModel], extra_names: Sequence[str] = ()
) -> list[tuple[tuple[Key, ...], str]]:
    """Each pydantic error as (location inside the validated object, short message).

    ``extra_names`` are keys valid at the top level besides the model's fields
    (``extends``), offered as "did you mean" candidates.
    """
    return [
        (error_loc(err), rewrite_error(err, model=model, extra_names=extra_names))
        for err in exc.errors(include_url=False)
    ]


def rewrite_error(
    error: ErrorDetails, *, model: type[BaseModel], extra_names: Sequence[str] = ()
) -> str:
    """One pydantic error as a short message; unknown kinds keep pydantic's text."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "required, but not set"
    if kind == "extra_forbidden":
        return _unknown_field(tuple(error["loc"]), model, extra_names)
    if kind in _TYPE_WORDS:
        return _wrong_type(kind, value)
    if kind in _BOUNDS:
        operator, bound = _BOUNDS[kind]
        return f"must be {operator} {describe(_plain_number(ctx[bound]))}, got {describe(value)}"
    if kind == "int_parsing_size":  # a number beyond 64 bits, e.g. 1.0e+20
        limit = _upper_bound(model, tuple(error["loc"]))
        wanted = f"must be <= {limit}" if limit is not None else "is far too large"
        return f"{wanted}, got {describe(value)}"
    if kind in ("enum", "literal_error"):
        return _unknown_choice(tuple(error["loc"]), value, str(ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{_PATTERNS.get(pattern, 'must match ' + pattern)}, got {describe(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    message = error["msg"]
    return message[:1].lower() + message[1:]


def _plain_number(value: Any) -> Any:
    """``0.0`` -> ``0``: bounds read as the user would write them."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _wrong_type(kind: str, value: Any) -> str:
    message = f"must be {_TYPE_WORDS[kind]}, got {describe(value)}"
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        message += f' (quote it: "{value}")'
    return message


def _unknown_choice(loc: tuple[Key, ...], value: Any, expected: str) -> str:
    choices = re.findall(r"'([^']*)'", expected) or [expected]
    noun = loc[-1] if loc and isinstance(loc[-1], str) else "value"
    listed = ", ".join(choices)
    return (
        f"unknown {noun} {describe(value)} (expected {listed}){did_you_mean(str(value), choices)}"
    )


def _unknown_field(loc: tuple[Key, ...], model: type[BaseModel], extra: Sequence[str]) -> str:
    key = str(loc[-1])
    names = fields_at(model, loc[:-1]) + (list(extra) if len(loc) == 1 else [])
    hint = did_you_mean(key, names)
    if not hint and names:
        hint = f"; valid fields: {', '.join(names)}"
    return f"unknown field '{key}'{hint}"


def fields_at(model: type[BaseModel], loc: Sequence[Key]) -> list[str]:
    """The field names valid at ``loc`` inside ``model`` ([] where keys are free)."""
    current = _unwrap(_walk(model, loc))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _upper_bound(model: type[BaseModel], loc: Sequence[Key]) -> Any:
    """The ``le`` bound of the field at ``loc`` inside ``model``, if it has one."""
    parent = _unwrap(_walk(model, loc[:-1]))
    if not (loc and isinstance(parent, type) and issubclass(parent, BaseModel)):
        return None
    info = parent.model_fields.get(str(loc[-1]))
    # pydantic keeps Field(le=...) as an annotated_types.Le in the metadata
    bounds = [item.le for item in (info.metadata if info else ()) if hasattr(item, "le")]
    return bounds[0] if bounds else None


def _walk(model: type[BaseModel], loc: Sequence[Key]) -> Any:
    current: Any = model
    for part in loc:
        current = _child_type(current, part)
    return current


def _child_type(annotation: Any, part: Key) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field else None
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2:
        return args[1]
    if get_origin(annotation) in (list, tuple) and args:
        return args[0]
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (the first model among union members)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if members else None
    return annotation
