"""``indexes:`` and ``pipelines:``: where documents' vectors live and how they get there; pure.

An index holds the vectors of exactly one embedding model: it names the fleet
service that embeds (``embedding:``) and the vectors' dimension, and the model
identity of that service is recorded with the index when it is first filled,
so a changed model is a planned rebuild, never a mix of two models' vectors.
An index is LanceDB (embedded: a folder or ``s3://`` URI) or, for a team,
PostgreSQL with pgvector: its URL (with its password) is read from the
environment variable ``url_env`` names, never written in the spec.

A pipeline reads documents from a directory or ``s3://BUCKET/PREFIX`` and
writes their chunks into one index. Object storage credentials and endpoint are
never in the spec: they come from the environment as for every AWS client
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``...).

Agents (``agents:``) will name the indexes they may read; the cross-references
are checked in ``spec.resolve`` with the others.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

S3_SCHEME = "s3://"
PGVECTOR_SCHEME = "pgvector://"
DEFAULT_INDEX_URI = ".llmfleet/indexes/{environment}/{name}"
DEFAULT_TABLE = "llmfleet_{name}_{environment}"
MAX_TABLE_CHARS = 50
"""PostgreSQL names are at most 63 bytes; the ledger's table adds ``_documents``."""
DEFAULT_INCLUDE = (
    "**/*.md",
    "**/*.markdown",
    "**/*.txt",
    "**/*.html",
    "**/*.htm",
    "**/*.pdf",
)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TABLE_PATTERN = r"^[a-z_][a-z0-9_]*$"
MAX_CHUNK_CHARS = 100_000


class _Frozen(BaseModel):
    # spec.model's Frozen, repeated: spec.model imports this module
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class IndexKind(StrEnum):
    LANCEDB = "lancedb"
    PGVECTOR = "pgvector"


class IndexSpec(_Frozen):
    """A vector index filled by pipelines and read by agents."""

    kind: IndexKind = Field(
        default=IndexKind.LANCEDB,
        description="lancedb (embedded, a folder or s3:// URI, no server) or pgvector "
        "(a PostgreSQL database with the vector extension, for a team)",
    )
    uri: str = Field(
        default=DEFAULT_INDEX_URI,
        min_length=1,
        description="lancedb: a folder (relative to the spec file) or s3://BUCKET/PREFIX; "
        "{environment} and {name} are filled in, so each environment has its own index",
    )
    url_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="pgvector: the environment variable that holds the database's URL "
        "(postgresql://USER:PASSWORD@HOST/DB); the URL itself never goes in the spec",
    )
    table: str = Field(
        default=DEFAULT_TABLE,
        min_length=1,
        description="pgvector: the chunks' table ({environment} and {name} filled in, '-' "
        "as '_'); the ledger and model identity are TABLE_documents and TABLE_identity",
    )
    embedding: str = Field(
        min_length=1, description="the service that serves /v1/embeddings for this index"
    )
    dimension: int = Field(ge=1, le=65536, description="length of the embedding vectors")

    @field_validator("url_env", mode="before")
    @classmethod
    def _url_env_names_a_variable(cls, value: object) -> object:
        if isinstance(value, str) and "://" in value:
            raise ValueError(
                "name the environment variable that holds the URL (url_env: DOCS_DB_URL), "
                "never the URL itself: it carries a password"
            )
        return value

    @field_validator("uri")
    @classmethod
    def _uri_fills(cls, value: str) -> str:
        _fill(value, environment="e", name="n")
        return value

    @field_validator("table")
    @classmethod
    def _table_fills(cls, value: str) -> str:
        import re

        filled = _fill(value, environment="e", name="n")
        if not re.fullmatch(TABLE_PATTERN, filled):
            raise ValueError(f"a table name is lower-case letters, digits and '_', got {value!r}")
        return value

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> IndexSpec:
        # A saved revision holds the defaults as dumped: only a value a user chose counts.
        if self.kind is IndexKind.PGVECTOR:
            if self.url_env is None:
                raise ValueError(
                    "a pgvector index needs url_env: the environment variable holding "
                    "its PostgreSQL URL"
                )
            if self.uri != DEFAULT_INDEX_URI:
                raise ValueError(
                    "uri is for lancedb indexes; a pgvector index has url_env and table"
                )
        elif self.url_env is not None or self.table != DEFAULT_TABLE:
            raise ValueError("url_env and table are for kind: pgvector; a lancedb index has uri")
        return self

    def location(self, *, name: str, environment: str) -> str:
        """Where this index is in ``environment``: a folder still relative to the spec's
        folder, an ``s3://`` URI, or ``pgvector://TABLE?url_env=VARIABLE`` (no secret)."""
        if self.kind is IndexKind.PGVECTOR:
            table = self.table_name(name=name, environment=environment)
            return f"{PGVECTOR_SCHEME}{table}?url_env={self.url_env}"
        return _fill(self.uri, environment=environment, name=name)

    def table_name(self, *, name: str, environment: str) -> str:
        """The pgvector chunks' table in ``environment``."""
        return _fill(
            self.table, environment=environment.replace("-", "_"), name=name.replace("-", "_")
        )


def pgvector_url_env(location: str) -> str | None:
    """The variable holding the database URL of a ``pgvector://`` location, else None."""
    if not location.startswith(PGVECTOR_SCHEME):
        return None
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(location).query).get("url_env", [None])[0]


def _fill(template: str, *, environment: str, name: str) -> str:
    try:
        return template.format(environment=environment, name=name)
    except (KeyError, IndexError, ValueError):
        raise ValueError(
            "only {environment} and {name} may appear in braces, got " + repr(template)
        ) from None


class ChunkSpec(_Frozen):
    """How a document's text is cut: about ``size`` characters, ``overlap`` shared."""

    size: int = Field(default=800, ge=50, le=MAX_CHUNK_CHARS, description="characters")
    overlap: int = Field(default=100, ge=0, description="characters shared by neighbours")

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkSpec:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


class PipelineSpec(_Frozen):
    """Documents from a folder or object storage, chunked, embedded, into an index."""

    source: str = Field(
        min_length=1,
        description="a folder (relative to the spec file) or s3://BUCKET[/PREFIX]; the "
        "endpoint and credentials come from the environment (AWS_ENDPOINT_URL, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never from the spec",
    )
    include: tuple[str, ...] = Field(
        default=DEFAULT_INCLUDE,
        min_length=1,
        description="globs of the documents to read, relative to the source ('**' any folders)",
    )
    exclude: tuple[str, ...] = Field(default=(), description="globs of documents to leave out")
    chunk: ChunkSpec = Field(default_factory=ChunkSpec)
    index: str = Field(min_length=1, description="the index the chunks are written to")
    embedding: str | None = Field(
        default=None,
        description="the embedding service; left out, the index's (it must be the index's)",
    )
    max_document_bytes: int = Field(
        default=2_000_000, ge=1, description="larger documents are skipped, with the reason"
    )
    batch_size: int = Field(default=32, ge=1, le=2048, description="chunks per embeddings request")

    @field_validator("source")
    @classmethod
    def _source_form(cls, value: str) -> str:
        if "://" in value and not value.startswith(S3_SCHEME):
            raise ValueError(f"must be a folder or s3://BUCKET[/PREFIX], got {value!r}")
        if value.startswith(S3_SCHEME) and not value[len(S3_SCHEME) :].split("/")[0]:
            raise ValueError("s3:// needs a bucket: s3://BUCKET[/PREFIX]")
        if value.startswith(S3_SCHEME) and "@" in value.split("/")[2]:
            raise ValueError("credentials never go in the spec; set AWS_* in the environment")
        return value
