"""Values as fleet.yaml spells them, for lines such as a plan's ``for: 1m -> 5m``; pure.

Specs are compared as ``model_dump(mode="json")`` data, whose keys are Python field
names (``for_``, as ``for`` is a keyword) and whose values print as Python reprs
(``None``, ``'1m'``) when formatted with ``str``. A person wrote YAML, so that is what
they are shown: flow style (``{kind: replica_down, for: 5m}``, ``[--tps, "500"]``),
``null``, ``true``, and a string quoted only where YAML
would otherwise read it as something else (``"500"``, ``"1.20"``, ``"true"``).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any

import yaml

_FLOW_UNSAFE = re.compile(r"[,\[\]{}#]|:(\s|$)|^:|^-(\s|$)|^[\s!&*|>%@`'\"?]|\s$")


def spec_key(key: object) -> str:
    """``for_`` -> ``for``: a field named after a Python keyword is spelt without its ``_``."""
    name = str(key)
    if name.endswith("_") and keyword.iskeyword(name[:-1]):
        return name[:-1]
    return name


def leaf_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """``(path, old, new)`` for every leaf that differs between two dumped specs, paths
    spelt with spec keys (``alerts.for``), mappings compared key by key."""
    changes: list[tuple[str, Any, Any]] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{spec_key(key)}"
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes += leaf_changes(before, after, prefix=path + ".")
        elif before != after:
            changes.append((path, before, after))
    return changes


def spelt(value: Any) -> str:
    """``value`` in YAML flow style, keys by their spec names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)  # YAML 1.1 reads 5e-324 as a string: it wants 5.0e-324
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, str):
        return _spelt_string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_spelt_string(spec_key(k))}: {spelt(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(spelt(item) for item in value) + "]"
    return _spelt_string(str(value))


def _spelt_string(text: str) -> str:
    """Bare where YAML reads the text back as this very string, as an item and as a key of
    a flow collection, else double-quoted."""
    if not text or not text.isprintable() or _FLOW_UNSAFE.search(text):
        return _quoted(text)
    try:
        as_item = yaml.safe_load(f"[{text}]")
        as_key = yaml.safe_load(f"{{{text}: 0}}")
    except yaml.YAMLError:
        return _quoted(text)
    return text if as_item == [text] and as_key == {text: 0} else _quoted(text)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar; what cannot be printed is escaped (YAML's \\u, \\U)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'
