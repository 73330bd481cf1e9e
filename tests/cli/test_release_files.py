"""What release commands write into the runtime's home (validation reports: prompts,
answers, key names) is this user's only, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llmfleet.cli.releases import release_context
from llmfleet.validate.report import write_reports
from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port=18080)


def test_reports_are_private_whatever_the_umask(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(SPEC)
    old = os.umask(0)
    try:
        with release_context(spec) as ctx:
            json_path, html_path = write_reports(ctx.reports_dir / "run", [], {"serial": 1})
    finally:
        os.umask(old)
    assert os.umask(old) == old  # the command leaves the umask as it found it
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in (ctx.reports_dir, json_path.parent, json_path, html_path)
    }
    assert modes == {"reports": 0o700, "run": 0o700, "report.json": 0o600, "report.html": 0o600}
