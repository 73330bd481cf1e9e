"""``indexes:`` and ``pipelines:``: where documents' vectors live and how they get there; pure.

An index holds the vectors of exactly one embedding model: it names the fleet
service that embeds (``embedding:``) and the vectors' dimension, and the model
identity of that service is recorded with the index when it is first filled,
so a changed model is a planned rebuild, never a mix of two models' vectors.

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
DEFAULT_INDEX_URI = ".llmfleet/indexes/{environment}/{name}"
DEFAULT_INCLUDE = ("**/*.md", "**/*.markdown", "**/*.txt", "**/*.html", "**/*.htm")
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
        description="lancedb (embedded, a folder or s3:// URI, no server); pgvector is "
        "not implemented yet",
    )
    uri: str = Field(
        default=DEFAULT_INDEX_URI,
        min_length=1,
        description="lancedb: a folder (relative to the spec file) or s3://BUCKET/PREFIX; "
        "{environment} and {name} are filled in, so each environment has its own index",
    )
    embedding: str = Field(
        min_length=1, description="the service that serves /v1/embeddings for this index"
    )
    dimension: int = Field(ge=1, le=65536, description="length of the embedding vectors")

    @field_validator("kind")
    @classmethod
    def _kind_is_done(cls, value: IndexKind) -> IndexKind:
        if value is IndexKind.PGVECTOR:
            raise ValueError("pgvector indexes are not implemented yet; use kind: lancedb")
        return value

    @field_validator("uri")
    @classmethod
    def _uri_fills(cls, value: str) -> str:
        try:
            value.format(environment="e", name="n")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "only {environment} and {name} may appear in braces, got " + repr(value)
            ) from None
        return value

    def location(self, *, name: str, environment: str) -> str:
        """The URI of this index in ``environment``, still relative to the spec's folder."""
        return self.uri.format(environment=environment, name=name)


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
