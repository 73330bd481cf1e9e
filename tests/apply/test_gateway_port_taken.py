"""A gateway port another program holds: ``plan`` warns naming the process, and
``apply`` fails before it starts anything (it said "listening on", then "port
already in use", and left the replicas running without a gateway)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.fleet import Fleet
from tests.fixtures.processes import stop_process
from tests.fixtures.specs import one_sim_service

SQUAT = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
time.sleep(300)
"""


def test_a_taken_gateway_port_is_named_and_apply_starts_nothing(fleet: Fleet) -> None:
    squatter = subprocess.Popen(
        [sys.executable, "-c", SQUAT, str(fleet.gateway_port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert squatter.stdout is not None and squatter.stdout.readline() == "listening\n"
        fleet.write(one_sim_service(port="GATEWAY_PORT"))
        holder = f"port {fleet.gateway_port} is in use by pid {squatter.pid} ({sys.executable} -c"

        planned = fleet.run("plan")
        assert holder in " ".join(planned.stdout.split())
        assert json.loads(fleet.run("plan", "--json").stdout)["notes"][-1].startswith(holder)

        applied = fleet.run("apply", "--yes", check=False)
        said = " ".join(applied.stderr.split())
        assert applied.returncode == 1 and holder in said and "Traceback" not in said
        assert "listening on" not in applied.stdout and "starting" not in applied.stdout
        assert fleet.replicas() == [] and fleet.backend.gateways() == []
        assert fleet.backend.environment_config("production")["services"] == {}
        history = json.loads(fleet.run("history", "--json").stdout)["revisions"]
        assert [(r["kind"], r["outcome"]) for r in history] == [("apply", "failed")]
        assert holder in history[0]["error"]
    finally:
        stop_process(squatter)
        assert squatter.stdout is not None
        squatter.stdout.close()
