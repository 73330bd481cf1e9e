"""Released engine versions, kept in the shared cache so that ``check`` rarely asks the index.

Asking the package index takes a second or more and needs the network; ``check`` and
``plan`` run far more often than engines are released. So the last listing of each
engine kind is kept in ``CACHE/index/KIND.json`` and trusted as follows:

- a version in it exists (releases stay released);
- a version not in it is missing only while the listing is younger than
  ``TRUST_ABSENCE_S``; an older listing is asked again, since a release may have
  come out since.

Side effects: reads and writes that one file per kind; ``ask`` is whatever lists the
index (an adapter's ``available_versions``), so tests hand it a listing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TRUST_ABSENCE_S = 300.0


@dataclass(frozen=True)
class Listing:
    """An engine kind's released versions, newest first, and when the index said so."""

    versions: tuple[str, ...]
    listed_at: float


@dataclass(frozen=True)
class ListingCache:
    """The last listing per engine kind under ``cache_dir/index``."""

    cache_dir: Path
    clock: Callable[[], float] = time.time

    def path(self, kind: str) -> Path:
        return self.cache_dir / "index" / f"{kind}.json"

    def read(self, kind: str) -> Listing | None:
        """The cached listing, or None when there is none (or it cannot be read)."""
        try:
            found = json.loads(self.path(kind).read_text())
            return Listing(tuple(str(v) for v in found["versions"]), float(found["listed_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, kind: str, versions: list[str]) -> Listing:
        """Record ``versions`` as listed now (written beside, then renamed: never half)."""
        listing = Listing(tuple(versions), self.clock())
        path = self.path(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps({"listed_at": listing.listed_at, "versions": versions}))
        staged.replace(path)
        return listing

    def lookup(self, kind: str, *, wanted: str | None, ask: Callable[[], list[str]]) -> Listing:
        """A listing that can tell whether ``wanted`` exists (None: a listing younger than
        ``TRUST_ABSENCE_S``), asking the index only when the cache cannot. ``EngineError``
        from ``ask`` passes through: the caller says the index cannot be reached."""
        cached = self.read(kind)
        if cached is not None and (
            wanted in cached.versions or self.clock() - cached.listed_at < TRUST_ABSENCE_S
        ):
            return cached
        return self.write(kind, ask())
