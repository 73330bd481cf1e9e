"""Where a pipeline's documents come from: a folder or ``s3://BUCKET/PREFIX``.

A source lists documents (a key relative to the source, its size) and reads one
by key. S3's endpoint and credentials come from the environment as for every
AWS client (boto3 reads ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...), never
from the spec, so no secret reaches the state, a log or a report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from llmfleet.errors import IngestError
from llmfleet.spec.rag import S3_SCHEME


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One listed document: ``key`` is its path relative to the source, with '/'.

    ``version`` changes whenever the content may have (S3's ETag, a file's size and
    mtime): a ledger entry with the same version is unchanged without a read."""

    key: str
    size: int
    version: str = ""


class Source(Protocol):
    def describe(self) -> str: ...

    def list_documents(self) -> Iterator[DocumentRef]: ...

    def read(self, key: str) -> bytes: ...


@dataclass(frozen=True)
class FolderSource:
    root: Path

    def describe(self) -> str:
        return str(self.root)

    def list_documents(self) -> Iterator[DocumentRef]:
        if not self.root.is_dir():
            raise IngestError(f"the pipeline's source folder {self.root} does not exist")
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                version = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
                yield DocumentRef(path.relative_to(self.root).as_posix(), stat.st_size, version)

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


@dataclass(frozen=True)
class S3Source:
    """``s3://BUCKET/PREFIX`` through boto3; ``client`` is made from the environment."""

    bucket: str
    prefix: str
    client: Any

    def describe(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"

    def list_documents(self) -> Iterator[DocumentRef]:
        from botocore.exceptions import BotoCoreError, ClientError

        pages = self.client.get_paginator("list_objects_v2")
        try:
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[len(self.prefix) :].lstrip("/")
                    if key and not key.endswith("/"):
                        yield DocumentRef(key, int(item["Size"]), str(item.get("ETag", "")))
        except (BotoCoreError, ClientError) as exc:
            raise IngestError(
                f"cannot list {self.describe()}: {exc}",
                hint="set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "in the environment",
            ) from exc

    def read(self, key: str) -> bytes:
        full = f"{self.prefix.rstrip('/')}/{key}" if self.prefix else key
        body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return bytes(body.read())


def open_source(text: str, *, base_dir: Path) -> Source:
    """The source a pipeline names: a folder relative to ``base_dir``, or S3."""
    if not text.startswith(S3_SCHEME):
        return FolderSource((base_dir / Path(text).expanduser()).resolve())
    bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
    import boto3

    return S3Source(bucket, prefix, boto3.client("s3"))


def matches(key: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether ``key`` matches an include glob and no exclude glob; pure.

    ``*`` and ``?`` stay within a folder, ``**/`` is any number of folders (none too).
    """
    return any(_glob(g).fullmatch(key) for g in include) and not any(
        _glob(g).fullmatch(key) for g in exclude
    )


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            char = pattern[i]
            out.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
            i += 1
    return re.compile("".join(out))
