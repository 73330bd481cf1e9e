"""YAML text to plain data plus where every key was written; pure.

PyYAML's ``SafeLoader.compose`` keeps a start mark on every node; walking the
nodes ourselves (instead of ``safe_load``) gives the location index, catches
duplicate keys (which ``safe_load`` silently lets the last one win), and keeps
mapping keys as the text the user typed (``on:`` stays ``"on"``, not ``True``).
YAML merge keys (``<<: *anchor``) are honoured; explicit keys win over merged ones.

A spec is input like any other, so the parser is bounded: nesting deeper than
``MAX_DEPTH`` is refused while composing (PyYAML's composer recurses and a few
thousand ``[`` would end in ``RecursionError``), and aliases may expand to at most
``MAX_ALIAS_COPIES`` nodes in all (nine levels of nine aliases, the "billion
laughs", would otherwise build 387 million strings). Both are refused at the line
where they happen, like any other problem.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from llmfleet.errors import SpecError, SpecProblem
from llmfleet.spec.locations import Location, Locations
from llmfleet.spec.problems import DocPath, Finding, WrittenNumber, describe, dotted

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_INIT_HINT = "run `llmfleet init` for a commented example"
MAX_DEPTH = 64
"""Mappings and lists nested in one another; the deepest real spec needs about 8."""
MAX_ALIAS_COPIES = 25_000
"""Nodes that aliases may add by expanding (a shared template used by every service adds
a few dozen per service); enough for any real spec, built in a fraction of a second."""


@dataclass(frozen=True)
class ParsedDocument:
    """A document's top-level mapping, its location index, and what was odd in it."""

    data: dict[str, Any]
    locations: Locations
    findings: tuple[Finding, ...]
    written: Mapping[DocPath, WrittenNumber] = field(default_factory=dict)
    """Numbers as the file spells them (``1.20`` reads as 1.2), for suggestions."""


def parse_document(text: str, *, filename: str) -> ParsedDocument:
    """Parse ``text``; raise ``SpecError`` if there is nothing usable to check further.

    That is: a YAML syntax error, an empty document, or a top level that is not
    a mapping. Lesser problems (duplicate keys, unknown tags) come back as findings.
    """
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML text cannot hold, e.g. NUL
        raise SpecError([_reader_problem(exc, text, filename)]) from exc
    builder = _Builder(loader)
    try:
        root = loader.get_single_node()
        data = builder.build(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_problem(exc, filename)]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(filename, None, None, "", f"invalid YAML: {exc}")]) from exc
    except _RefusedError as exc:
        raise SpecError([exc.problem(filename, builder.index)]) from exc
    finally:
        loader.dispose()
    mapping = _require_mapping(data, root, filename=filename)
    return ParsedDocument(
        mapping, Locations(builder.index), tuple(builder.findings), builder.written
    )


class _RefusedError(Exception):
    """A document too deep or too expanded to read on; placed at a mark or a document path."""

    def __init__(self, message: str, *, mark: yaml.Mark | None = None, path: DocPath = ()) -> None:
        super().__init__(message)
        self.message, self.mark, self.path = message, mark, path

    def problem(self, filename: str, index: dict[DocPath, Location]) -> SpecProblem:
        if self.mark is not None:
            where: Location | None = _mark_location(self.mark)
        else:
            where = index.get(self.path)
        line, column = (where.line, where.column) if where else (None, None)
        return SpecProblem(filename, line, column, dotted(self.path), self.message)


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no types
    """PyYAML's safe loader, refusing deep nesting and remembering where each alias was.

    An alias composes into the very node it names, whose marks are the anchor's;
    ``alias_marks`` keeps the alias's own place for items of a list, keyed by
    (list node id, index), so problems inside it are reported where it was written.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.alias_marks: dict[tuple[int, int], yaml.Mark] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            if parent is not None and isinstance(index, int):
                self.alias_marks[(id(parent), index)] = self.peek_event().start_mark
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                message = f"nesting deeper than {MAX_DEPTH} levels; a spec needs far fewer"
                raise _RefusedError(message, mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _reader_problem(exc: yaml.reader.ReaderError, text: str, filename: str) -> SpecProblem:
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    message = f"invalid YAML: character #x{exc.character:04x} is not allowed in YAML text"
    return SpecProblem(filename, line, column, "", message)


def _require_mapping(data: Any, root: yaml.Node | None, *, filename: str) -> dict[str, Any]:
    if root is None or data is None:
        message = f"the file is empty; a spec needs at least `services:` ({_INIT_HINT})"
        raise SpecError([SpecProblem(filename, None, None, "", message)])
    if not isinstance(data, dict):
        line, column = root.start_mark.line + 1, root.start_mark.column + 1
        message = f"the top level must be a mapping (services:, ...), got {describe(data)}"
        raise SpecError([SpecProblem(filename, line, column, "", message)])
    return data


def _unreadable(node: yaml.Node, exc: Exception) -> str:
    if node.tag == _INT_TAG and "integer string conversion" in str(exc):
        digits = sum(c.isdigit() for c in str(node.value))
        return f"an integer of {digits} digits (at most {sys.get_int_max_str_digits()})"
    return str(exc)


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
    return _mark_location(node.start_mark)


def _mark_location(mark: yaml.Mark) -> Location:
    return Location(mark.line + 1, mark.column + 1)


class _Builder:
    """Walks composed nodes into plain data, recording locations and findings."""

    def __init__(self, loader: _BoundedLoader) -> None:
        self._loader = loader
        self._active: set[int] = set()  # nodes being built: guards recursive aliases
        self._built: set[int] = set()  # nodes built once: building one again is an alias copy
        self._copies = 0
        self._copy_root: DocPath | None = None  # where the alias being expanded was written
        self.index: dict[DocPath, Location] = {}
        self.findings: list[Finding] = []
        self.written: dict[DocPath, WrittenNumber] = {}

    def build(self, node: yaml.Node, path: DocPath) -> Any:
        if not path:
            self.index.setdefault((), _location(node))
        if id(node) in self._active:
            self.findings.append(Finding(path, "a YAML alias refers to itself"))
            return None
        if len(path) > MAX_DEPTH:  # aliases nest too: each may add MAX_DEPTH levels
            message = f"nesting deeper than {MAX_DEPTH} levels through aliases"
            raise _RefusedError(message, path=self._copy_root or path[:MAX_DEPTH])
        outermost_copy = id(node) in self._built and self._copy_root is None
        if outermost_copy:
            self._copy_root = path
        self._count_copy(node)
        self._active.add(id(node))
        try:
            return self._build_node(node, path)
        finally:
            self._active.discard(id(node))
            if outermost_copy:
                self._copy_root = None

    def _count_copy(self, node: yaml.Node) -> None:
        if id(node) not in self._built:
            self._built.add(id(node))
            return
        self._copies += 1
        if self._copies > MAX_ALIAS_COPIES:
            message = (
                f"too many aliases (billion laughs?): they expand to more than "
                f"{MAX_ALIAS_COPIES} nodes; write the values out or nest fewer aliases"
            )
            raise _RefusedError(message, path=self._copy_root or ())

    def _build_node(self, node: yaml.Node, path: DocPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path)
        return self._scalar(node, path)

    def _sequence(self, node: yaml.SequenceNode, path: DocPath) -> list[Any]:
        items = []
        for number, item in enumerate(node.value):
            alias = self._loader.alias_marks.get((id(node), number))
            self.index[(*path, number)] = _mark_location(alias) if alias else _location(item)
            items.append(self.build(item, (*path, number)))
        return items

    def _scalar(self, node: yaml.Node, path: DocPath) -> Any:
        try:
            value = self._loader.construct_object(node, deep=True)
            if isinstance(value, int | float) and isinstance(node.value, str):
                self.written[path] = WrittenNumber(node.value, value)
            return value
        except yaml.MarkedYAMLError as exc:
            self.findings.append(Finding(path, f"cannot read this value: {exc.problem}"))
        except (ValueError, OverflowError) as exc:  # a date that does not exist, a huge int
            self.findings.append(Finding(path, f"cannot read this value: {_unreadable(node, exc)}"))
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
