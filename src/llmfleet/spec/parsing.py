"""YAML text to plain data plus where every key was written; pure.

PyYAML's ``SafeLoader.compose`` keeps a start mark on every node; walking the
nodes ourselves (instead of ``safe_load``) gives the location index, catches
duplicate keys (which ``safe_load`` silently lets the last one win), and keeps
mapping keys as the text the user typed (``on:`` stays ``"on"``, not ``True``).
YAML merge keys (``<<: *anchor``) are honoured; explicit keys win over merged ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from llmfleet.errors import SpecError, SpecProblem
from llmfleet.spec.locations import Location, Locations
from llmfleet.spec.problems import DocPath, Finding, describe

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INIT_HINT = "run `llmfleet init` for a commented example"


@dataclass(frozen=True)
class ParsedDocument:
    """A document's top-level mapping, its location index, and what was odd in it."""

    data: dict[str, Any]
    locations: Locations
    findings: tuple[Finding, ...]


def parse_document(text: str, *, filename: str) -> ParsedDocument:
    """Parse ``text``; raise ``SpecError`` if there is nothing usable to check further.

    That is: a YAML syntax error, an empty document, or a top level that is not
    a mapping. Lesser problems (duplicate keys, unknown tags) come back as findings.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        builder = _Builder(loader)
        data = builder.build(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_problem(exc, filename)]) from exc
    except yaml.YAMLError as exc:  # e.g. a byte that cannot appear in YAML text
        raise SpecError([SpecProblem(filename, None, None, "", f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    mapping = _require_mapping(data, root, filename=filename)
    return ParsedDocument(mapping, Locations(builder.index), tuple(builder.findings))


def _require_mapping(data: Any, root: yaml.Node | None, *, filename: str) -> dict[str, Any]:
    if root is None or data is None:
        message = f"the file is empty; a spec needs at least `services:` ({_INIT_HINT})"
        raise SpecError([SpecProblem(filename, None, None, "", message)])
    if not isinstance(data, dict):
        line, column = root.start_mark.line + 1, root.start_mark.column + 1
        message = f"the top level must be a mapping (services:, ...), got {describe(data)}"
        raise SpecError([SpecProblem(filename, line, column, "", message)])
    return data


def _syntax_problem(exc: yaml.MarkedYAMLError, filename: str) -> SpecProblem:
    mark = exc.problem_mark or exc.context_mark
    message = str(exc.problem or exc.context)
    if exc.context and exc.problem and exc.context_mark is not None:
        if message.startswith("but "):  # "expected a single document ..., but found another"
            message = f"{exc.context}, {message}"
        else:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return SpecProblem(filename, line, column, "", f"invalid YAML: {message}")


def _location(node: yaml.Node) -> Location:
    return Location(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Walks composed nodes into plain data, recording locations and findings."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self._loader = loader
        self._active: set[int] = set()  # nodes being built: guards recursive aliases
        self.index: dict[DocPath, Location] = {}
        self.findings: list[Finding] = []

    def build(self, node: yaml.Node, path: DocPath) -> Any:
        if not path:
            self.index.setdefault((), _location(node))
        if id(node) in self._active:
            self.findings.append(Finding(path, "a YAML alias refers to itself"))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _sequence(self, node: yaml.SequenceNode, path: DocPath) -> list[Any]:
        items = []
        for number, item in enumerate(node.value):
            self.index[(*path, number)] = _location(item)
            items.append(self.build(item, (*path, number)))
        return items

    def _scalar(self, node: yaml.Node, path: DocPath) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.findings.append(Finding(path, f"cannot read this value: {exc.problem}"))
            return None

    def _mapping(self, node: yaml.MappingNode, path: DocPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge_in(result, value_node, path)
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            here = _location(key_node)
            if key in first_seen:
                message = f"duplicate key '{key}' (first set at line {first_seen[key]})"
                self.findings.append(Finding((*path, key), message))
            first_seen[key] = here.line
            self.index[(*path, key)] = here
            result[key] = self.build(value_node, (*path, key))
        return result

    def _key(self, node: yaml.Node, path: DocPath) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self.index.setdefault(path, _location(node))
        self.findings.append(Finding(path, "keys must be plain strings, not lists or mappings"))
        return None

    def _merge_in(self, result: dict[str, Any], node: yaml.Node, path: DocPath) -> None:
        """``<<: *base`` or ``<<: [*a, *b]`` (earlier sources win, as in YAML 1.1)."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in reversed(sources):
            value = self.build(source, path)
            if isinstance(value, dict):
                result.update(value)
            else:
                self.findings.append(Finding(path, "`<<` needs a mapping or a list of mappings"))
