"""Render and plan of a big fleet on Kubernetes: 100 services, 1,000 sim replicas.

Against the fake API server of the tests (real HTTP on 127.0.0.1, in a process of
its own): render the environment's objects, plan them against an empty namespace
(every object a server-side apply dry run), apply, and plan again (all no-ops).
Baselines in the same run: loading the spec, and rendering alone. Goal: plan < 2 s.

    .venv/bin/python bench/k8s_scale.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from plan_scale import spec_text  # noqa: E402

from llmfleet.backends.kubernetes.applying import apply_objects  # noqa: E402
from llmfleet.backends.kubernetes.client import connect  # noqa: E402
from llmfleet.backends.kubernetes.context import RenderContext  # noqa: E402
from llmfleet.backends.kubernetes.planning import plan_objects  # noqa: E402
from llmfleet.backends.kubernetes.render import render_environment  # noqa: E402
from llmfleet.spec.loading import load_spec  # noqa: E402

ENVIRONMENTS = """
environments:
  production:
    backend: {kind: kubernetes, namespace: bench}
"""


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(spec_text(100, 10) + ENVIRONMENTS)
        load_s, spec = timed(lambda: load_spec(path).resolved, 3)
    ctx = RenderContext(fleet=spec.name, environment=spec.environment("production"))
    render_s, objects = timed(lambda: render_environment(ctx), 5)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.backends.kubernetes.fake_api"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with connect(ctx.environment.backend, namespace=ctx.namespace, server=url) as client:

            def plan() -> Any:
                return plan_objects(client, objects, owner=ctx.owner, namespace=ctx.namespace)

            empty_s, first = timed(plan, 3)
            apply_s, _ = timed(lambda: apply_objects(client, first), 1)
            again_s, second = timed(plan, 3)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    replicas = sum(s.replicas for s in ctx.environment.services.values())
    print(f"{len(ctx.environment.services)} services, {replicas} replicas, "
          f"{len(objects)} objects (median of 3; render of 5)")  # fmt: skip
    print(f"  baseline: load + resolve the spec  {load_s:7.3f} s")
    print(f"  baseline: render alone             {render_s:7.3f} s")
    print(f"  plan, empty namespace              {empty_s:7.3f} s  ({len(first.pending)} creates)")
    print(f"  apply (server-side apply)          {apply_s:7.3f} s")
    print(f"  plan, converged                    {again_s:7.3f} s  ({len(second.pending)} changes)")
    print(f"  goal: plan < 2 s: {'met' if max(empty_s, again_s) < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
