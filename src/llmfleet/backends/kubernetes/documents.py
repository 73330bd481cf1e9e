"""Rendered objects as YAML text; pure.

Plain block YAML in the order the keys were built (the order a person reads a
manifest in), and never an anchor or alias: two objects that share a nested
mapping in memory are written out in full, as kubectl and every GitOps diff expect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _PlainDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type stubs here
    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(document: Any) -> str:
    text: str = yaml.dump(
        document, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=100
    )
    return text


def to_yaml_stream(documents: Iterable[Any]) -> str:
    """Several documents, separated by ``---`` (``kubectl apply -f`` reads them in order)."""
    return "---\n".join(to_yaml(document) for document in documents)
