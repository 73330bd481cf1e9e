"""An apply killed mid-way (kill -9 of the CLI) is recorded at the next command as
interrupted, as Terraform records a failed apply; before, it left no history entry."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from llmfleet.state import StateStore
from tests.fixtures.fleet import Fleet
from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port="GATEWAY_PORT")
URL = "sqlite:///.llmfleet/state.db"

# What a real apply does up to its first replica, then it is killed -9 by itself.
KILLED_APPLY = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from llmfleet.plan.model import Action, Op, Plan, Target
    from llmfleet.state import StateStore
    plan = Plan("production", 0, "h", (Action(Op.CREATE, Target.REPLICA, "chat", 0),))
    store = StateStore.open(sys.argv[1], base_dir=Path(sys.argv[2]))
    with store.lock(purpose="apply production") as held:
        store.note_apply_started(held, plan=plan.to_json(), kind="apply", message="scale",
                                 user="ada", environment="production", spec_hash="h")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_an_apply_killed_mid_way_is_recorded_as_interrupted(fleet: Fleet) -> None:
    fleet.write(SPEC)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_APPLY, URL, str(fleet.root)], capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    history = fleet.run("history").stdout
    assert "interrupted" in history, history
    with StateStore.open(URL, base_dir=fleet.root) as store:
        (revision,) = store.revisions()
        assert store.lock_info() is None  # the dead apply's lock is gone
    assert revision.outcome == "failed" and revision.kind == "apply"
    assert revision.error is not None and revision.error.startswith("interrupted")
    assert revision.plan["actions"][0]["service"] == "chat"  # what it was carrying out
    assert revision.message == "scale"
    assert fleet.run("history").stdout.count("interrupted") == 1  # recorded once
