"""Template chains: which templates a service inherits from, root first; pure.

A service or template names its parent with ``extends: NAME``; a template may
extend another. Each chain is computed once and shared (memoised), so a spec
of many services on a few templates resolves in linear time. Broken chains
(an unknown parent, a cycle) are reported once, where the ``extends`` is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmfleet.spec.problems import DocPath, Finding, describe, unknown_name

Templates = Mapping[str, Mapping[str, Any]]
Chains = dict[str, tuple[str, ...]]


def template_chains(templates: Templates) -> tuple[Chains, list[Finding]]:
    """Each sound template's chain, root first and ending with itself.

    Templates whose chain is broken are left out; the findings say why.
    """
    findings: list[Finding] = []
    parents: dict[str, str | None] = {}
    for name, body in templates.items():
        problem, parent = parent_of(body, templates, at=("templates", name, "extends"))
        if problem is not None:
            findings.append(problem)
        else:
            parents[name] = parent
    chains: dict[str, tuple[str, ...] | None] = {}
    for name in templates:
        _walk_chain(name, parents, chains, findings)
    return {name: chain for name, chain in chains.items() if chain is not None}, findings


def parent_of(
    body: Mapping[str, Any], templates: Templates, *, at: DocPath
) -> tuple[Finding | None, str | None]:
    """The template ``body`` extends (None if none), or a finding if it names none that exists."""
    parent = body.get("extends")
    if parent is None:
        return None, None
    if not isinstance(parent, str):
        return Finding(at, f"must be the name of a template, got {describe(parent)}"), None
    if parent not in templates:
        return Finding(at, unknown_name("template", parent, templates)), None
    return None, parent


def _walk_chain(
    name: str,
    parents: Mapping[str, str | None],
    chains: dict[str, tuple[str, ...] | None],
    findings: list[Finding],
) -> None:
    """Fill ``chains`` for ``name`` and its ancestors; None marks a broken chain."""
    walk: list[str] = []
    current: str | None = name
    while current is not None and current not in chains:
        if current in walk:
            cycle = [*walk[walk.index(current) :], current]
            path = ("templates", cycle[0], "extends")
            findings.append(Finding(path, "template cycle: " + " -> ".join(cycle)))
            chains.update(dict.fromkeys(walk))
            return
        if current not in parents:  # its own `extends` is wrong, already reported
            chains.update(dict.fromkeys([*walk, current]))
            return
        walk.append(current)
        current = parents[current]
    chain = () if current is None else chains[current]
    for template in reversed(walk):
        chain = None if chain is None else (*chain, template)
        chains[template] = chain
