"""An index opened by its location, whatever its kind: a folder or ``s3://`` URI
(LanceDB) or ``pgvector://TABLE?url_env=VARIABLE`` (PostgreSQL with pgvector).

A location carries no secret: a pgvector one names the environment variable
that holds the database's URL, read here from ``environ`` (the process's
environment, passed in by the caller). An agent gets its indexes' locations in
``LLMFLEET_INDEX_<NAME>`` and opens them with ``open_location``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from llmfleet.errors import IngestError
from llmfleet.rag.index import Index, VectorIndex
from llmfleet.spec.rag import PGVECTOR_SCHEME, pgvector_url_env


@dataclass(frozen=True, slots=True)
class PgVectorPlace:
    table: str
    url_env: str


def pgvector_place(location: str) -> PgVectorPlace | None:
    """The table and URL variable of a ``pgvector://`` location; None for LanceDB's."""
    if not location.startswith(PGVECTOR_SCHEME):
        return None
    parts = urlsplit(location)
    url_env = pgvector_url_env(location)
    if not parts.netloc or not url_env:
        raise IngestError(
            f"{location!r} is not a pgvector location",
            hint="the form is pgvector://TABLE?url_env=VARIABLE",
        )
    return PgVectorPlace(parts.netloc, url_env)


def database_url(place: PgVectorPlace, environ: Mapping[str, str]) -> str:
    """The URL in the variable the index names; a clear error when it is not set."""
    url = environ.get(place.url_env, "")
    if not url:
        raise IngestError(
            f"the pgvector index {place.table} reads its database URL from "
            f"${place.url_env}, which is not set",
            hint=f"export {place.url_env}=postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(it stays in the environment: never in the spec, state or reports)",
        )
    return url


def open_location(location: str, *, dimension: int, environ: Mapping[str, str]) -> Index:
    """The index at ``location``, created empty if it does not exist."""
    place = pgvector_place(location)
    if place is None:
        return VectorIndex.open(location, dimension=dimension)
    from llmfleet.rag.pgvector import PgVectorIndex

    url = database_url(place, environ)
    return PgVectorIndex.open(url, table=place.table, dimension=dimension)


def read_identity(location: str, *, environ: Mapping[str, str]) -> str | None:
    """The model the index at ``location`` holds; None when never filled. Creates nothing."""
    place = pgvector_place(location)
    if place is None:
        return VectorIndex.recorded_identity(location)
    from llmfleet.rag.pgvector import PgVectorIndex

    return PgVectorIndex.recorded_identity(database_url(place, environ), table=place.table)
