"""Where each part of ``fleet.yaml`` was written, and problems placed there; pure.

The index maps a document path (``("services", "chat", "replicas")``) to the
1-based line and column of its key (or of the item, inside a list). A problem
about a path the document does not contain (a required field nobody set) is
placed at its nearest written ancestor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from llmfleet.errors import SpecProblem
from llmfleet.spec.problems import DocPath, Finding, dotted


@dataclass(frozen=True)
class Location:
    """1-based, as editors count."""

    line: int
    column: int


@dataclass(frozen=True)
class Locations:
    """The location index of one document."""

    index: Mapping[DocPath, Location] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    def get(self, path: DocPath) -> Location | None:
        return self.index.get(path)

    def nearest(self, path: DocPath) -> Location | None:
        """The location of ``path`` or of its closest ancestor that was written."""
        for end in range(len(path), -1, -1):
            found = self.index.get(path[:end])
            if found is not None:
                return found
        return None

    def place(self, finding: Finding, *, filename: str) -> SpecProblem:
        where = self.nearest(finding.path)
        return SpecProblem(
            file=filename,
            line=where.line if where else None,
            column=where.column if where else None,
            path=dotted(finding.path),
            message=finding.message,
        )


def place_findings(
    findings: Iterable[Finding], locations: Locations, *, filename: str
) -> list[SpecProblem]:
    """Every finding placed in the file, duplicates dropped, in file order."""
    placed = dict.fromkeys(locations.place(f, filename=filename) for f in findings)
    return sorted(placed, key=lambda p: (p.line or 0, p.column or 0, p.path, p.message))
