"""Deep merge of partial services, remembering where every value was written; pure.

The rules (the README quotes them):

1. Mappings merge key by key, recursively: an override changes only the keys it names.
2. Lists and scalars replace: ``engine.args`` in an override is the whole new list.
3. A key set to ``null`` is removed, so the field falls back to its default
   (or to "required" if it has none).
4. ``extends`` is not inherited: it names the parent, it is not part of the result.
5. Later layers win. For a service S in environment E the layers are: S's template
   chain (root first), S's own keys, ``E.defaults``, then ``E.services.S``.

Provenance maps a path inside the merged service to the document path where
its value was written, so a bad value inherited from a template is reported
at the template's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmfleet.spec.problems import DocPath, Key

Layer = tuple[Mapping[str, Any], DocPath]
"""A partial service and the document path it was written at."""


@dataclass
class Merged:
    """A merged partial service and where each of its parts came from."""

    data: dict[str, Any] = field(default_factory=dict)
    provenance: dict[DocPath, DocPath] = field(default_factory=dict)

    def copy(self) -> Merged:
        return Merged(_copy(self.data), dict(self.provenance))

    def origin_of(self, loc: tuple[Key, ...]) -> DocPath:
        """The document path where the value at ``loc`` (inside the service) was written."""
        for end in range(len(loc), -1, -1):
            origin = self.provenance.get(loc[:end])
            if origin is not None:
                return origin + loc[end:]
        return loc


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged over it by the rules above; inputs are untouched."""
    merged = Merged(_copy(dict(base)))
    merge_layer(merged, override, origin=())
    return merged.data


def merge_layers(layers: Iterable[Layer], *, home: DocPath) -> Merged:
    """Merge ``layers`` in order; paths no layer wrote are attributed to ``home``."""
    merged = Merged(provenance={(): home})
    for data, origin in layers:
        merge_layer(merged, data, origin=origin)
    return merged


def merge_layer(merged: Merged, layer: Mapping[str, Any], *, origin: DocPath) -> None:
    """Merge one layer into ``merged`` in place; ``extends`` is skipped (rule 4)."""
    _merge_into(merged, merged.data, layer, prefix=(), origin=origin)


def _merge_into(
    merged: Merged,
    target: dict[str, Any],
    layer: Mapping[str, Any],
    *,
    prefix: tuple[Key, ...],
    origin: DocPath,
) -> None:
    for key, value in layer.items():
        if not prefix and key == "extends":
            continue
        path = (*prefix, key)
        if value is None:
            if target.pop(key, None) is not None:
                _forget(merged.provenance, path)
        elif isinstance(value, Mapping):
            if not isinstance(target.get(key), dict):
                _forget(merged.provenance, path)
                target[key] = {}
                merged.provenance[path] = origin + path
            _merge_into(merged, target[key], value, prefix=path, origin=origin)
        else:
            if isinstance(target.get(key), dict):
                _forget(merged.provenance, path)
            target[key] = _copy(value)
            merged.provenance[path] = origin + path


def _forget(provenance: dict[DocPath, DocPath], path: tuple[Key, ...]) -> None:
    """Drop ``path`` and everything under it (rare: only when a mapping is replaced)."""
    for known in [p for p in provenance if p[: len(path)] == path]:
        del provenance[known]


def _copy(value: Any) -> Any:
    """A copy of plain YAML data, so merging never mutates the spec it reads."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value
