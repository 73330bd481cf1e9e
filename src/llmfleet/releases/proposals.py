"""A passed candidate written for review: the edited spec and a pull-request body.

``promote: propose`` (the agent) and ``llmfleet upgrade propose`` (a CI job)
leave production alone and write what a reviewer needs instead: the spec with
the one line changed, and a markdown body with the versions, the gate's
verdicts and where the full report is.
"""

from __future__ import annotations

from pathlib import Path

from llmfleet.releases.upgrade import Candidate
from llmfleet.releases.validation import ValidationResult


def proposal_body(service: str, old: str, candidate: Candidate, result: ValidationResult) -> str:
    """The pull request's body in markdown; pure."""
    new = candidate.loaded.resolved.environments["production"].services[service].engine.version
    lines = [
        f"## Upgrade {service}: engine {old} -> {new}",
        "",
        f"Validated in staging against production: **{result.outcome.value}**.",
        f"The spec line edited: `{candidate.where}`.",
        "",
        "| service | check | verdict | observed vs limit |",
        "|---|---|---|---|",
    ]
    for report in result.services:
        for v in report.verdicts:
            detail = v.detail.replace("|", "\\|")
            lines.append(f"| {report.service} | {v.check} | {v.outcome.value} | {detail} |")
    lines += ["", f"Full report: `{result.html_path}` (and `{result.json_path}`).", ""]
    return "\n".join(lines)


def write_proposal(
    folder: Path, candidate: Candidate, service: str, old: str, result: ValidationResult
) -> Path:
    """Write ``folder/SERVICE-VERSION/`` with the edited spec and ``proposal.md``;
    return the body's path. Files are this user's only (the caller's umask 077)."""
    new = candidate.loaded.resolved.environments["production"].services[service].engine.version
    target = folder / f"{service}-{new}"
    target.mkdir(parents=True, exist_ok=True)
    (target / candidate.loaded.path.name).write_text(candidate.text, encoding="utf-8")
    body = target / "proposal.md"
    body.write_text(proposal_body(service, old, candidate, result), encoding="utf-8")
    return body
