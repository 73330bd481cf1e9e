"""Time for a full validation of the quickstart service (goal: under 2 minutes).

    .venv/bin/python bench/validate_time.py

Applies the quickstart (real llama-server, SmolLM2-135M) to production in a
temporary folder, then times `llmfleet validate` end to end: staging deploy,
quality suite and speed suite on both sides, report, teardown.
"""

from __future__ import annotations

from _quickstart import project


def main() -> None:
    with project() as p:
        p.write(p.base)
        print(f"apply production: {p.run('apply', '--yes'):.1f} s")
        seconds = p.run("validate")
        verdict = "PASS (goal < 120 s)" if seconds < 120 else "over the 120 s goal"
        print(f"full validation of the quickstart service: {seconds:.1f} s  {verdict}")


if __name__ == "__main__":
    main()
