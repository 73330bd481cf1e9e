"""Agents on a cluster through the CLI against the fake API server (controllers on):
plan names the agent's Secret to be made, apply makes it with a key the state store
knows (hashed, scoped to the agent's models; the cluster's gateway checks keys there),
a replaced agent gets a new Secret and its old key is revoked, a missing secret stops
the apply before anything changes, and destroy revokes what is left."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from llmfleet.spec.agents import agent_of_key
from llmfleet.state.records import ApiKey
from llmfleet.state.store import StateStore
from tests.backends.kubernetes import cluster_cli
from tests.backends.kubernetes.cluster_cli import write_kubeconfig
from tests.backends.kubernetes.fake_api import FakeApiServer

NS = "rag-prod"
SPEC = """
name: rag
state: sqlite:///state.db
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
  embed:
    model: sim:embed
    engine: {kind: sim, version: "1.2.0"}
agents:
  helper:
    image: registry.example.com/helper:IMAGE
    entrypoint: helper.app:app
    models: [chat]
    secrets: [SEARCH_TOKEN]
    replicas: 2
environments:
  production:
    backend: {kind: kubernetes, context: fake, namespace: rag-prod,
              state_secret: llmfleet-state}
"""
TOKEN = "search-token-value-1234"


@pytest.fixture
def project(tmp_path: Path, cluster: FakeApiServer) -> tuple[Path, FakeApiServer]:
    write_kubeconfig(tmp_path, {"fake": cluster.url}, current="fake")
    write_spec(tmp_path, image="1.0")
    return tmp_path, cluster


def write_spec(folder: Path, *, image: str) -> None:
    (folder / "fleet.yaml").write_text(SPEC.replace("IMAGE", image))


def cli(folder: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    return cluster_cli.cli(folder, *args, env={"SEARCH_TOKEN": token})


class Keys:
    """The state store's keys as the gateway looks them up, read afresh each time (the
    CLI writes them from other processes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def verify_key(self, secret: str) -> ApiKey | None:
        store = StateStore.open("sqlite:///state.db", base_dir=self.folder)
        try:
            return store.verify_key(secret)
        finally:
            store.close()


def agent_secrets(cluster: FakeApiServer) -> dict[str, dict[str, str]]:
    """The agent Secrets in the namespace, decoded."""
    found = {}
    for kind, ns, name in list(cluster.objects):
        body = cluster.get(kind, ns, name)
        if kind == "Secret" and ns == NS and body is not None and name.startswith("helper-"):
            data = body.get("data") or {}
            found[name] = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return found


def test_apply_makes_a_scoped_key_rotates_it_on_replace_and_revokes_it(
    project: tuple[Path, FakeApiServer],
) -> None:
    folder, cluster = project
    planned = cli(folder, "plan", "-e", "production")
    assert planned.returncode == 0, planned.stderr
    assert "+ Deployment/helper" in planned.stdout and "+ Service/helper" in planned.stdout
    assert "Secret/helper-agent-" in planned.stdout and "is made at apply" in planned.stdout
    assert "Secret/helper-engine-key" not in planned.stdout, "an agent wants no engine key"

    applied = cli(folder, "apply", "-e", "production", "-y")
    assert applied.returncode == 0, applied.stderr + applied.stdout
    ((first, data),) = agent_secrets(cluster).items()
    assert data["SEARCH_TOKEN"] == TOKEN
    assert "the cluster's gateway checks keys in the database of Secret llmfleet-state" in (
        applied.stdout + applied.stderr
    ), "a SQLite state is one the cluster's gateway cannot read: said so"
    key = data["OPENAI_API_KEY"]
    deployment = cluster.get("Deployment", NS, "helper")
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {v["name"]: v["valueFrom"]["secretKeyRef"]["name"] for v in container["env"]
            if "valueFrom" in v}  # fmt: skip
    assert refs == {"OPENAI_API_KEY": first, "SEARCH_TOKEN": first}
    store = Keys(folder)
    record = store.verify_key(key)
    assert record is not None and tuple(record.services) == ("chat",)
    assert agent_of_key(record.name) == "helper"
    for text in (applied.stdout, applied.stderr, (folder / "state.db").read_bytes().decode(
            "latin-1")):  # fmt: skip
        assert key not in text and TOKEN not in text, "a secret was written out"

    status = cli(folder, "status", "-e", "production")
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("helper-") >= 2, status.stdout  # its two pods, as replicas

    again = cli(folder, "plan", "-e", "production", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr  # nothing to do: key kept

    write_spec(folder, image="2.0")
    refused = cli(folder, "apply", "-e", "production", "-y", token=None)
    assert refused.returncode != 0
    assert "agents.helper: SEARCH_TOKEN not set in your environment" in refused.stderr
    assert "export SEARCH_TOKEN=" in refused.stderr and "Traceback" not in refused.stderr
    assert list(agent_secrets(cluster)) == [first], "nothing was made"
    assert store.verify_key(key) is not None

    replaced = cli(folder, "apply", "-e", "production", "-y")
    assert replaced.returncode == 0, replaced.stderr + replaced.stdout
    ((second, new),) = agent_secrets(cluster).items()
    assert second != first, "a replaced agent gets a Secret of its own"
    assert store.verify_key(key) is None, "the replaced agent's key is revoked"
    assert store.verify_key(new["OPENAI_API_KEY"]) is not None

    destroyed = cli(folder, "destroy", "-e", "production", "-y")
    assert destroyed.returncode == 0, destroyed.stderr + destroyed.stdout
    assert agent_secrets(cluster) == {}
    assert store.verify_key(new["OPENAI_API_KEY"]) is None, "destroy revokes the key"
