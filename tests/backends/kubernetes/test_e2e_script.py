"""scripts/k8s-e2e.sh, as far as it runs without a cluster: its syntax, and its
--render-only mode (the quickstart with production on a cluster, checked, rendered and
validated against Kubernetes' schemas in strict mode). The cluster part has not run here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.backends.kubernetes.cases import ROOT

SCRIPT = ROOT / "scripts" / "k8s-e2e.sh"


def test_the_script_parses_and_says_it_has_not_run_here() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    assert "NOT RUN HERE" in SCRIPT.read_text()


def test_render_only_writes_valid_manifests_of_the_quickstart_on_a_cluster(tmp_path: Path) -> None:
    env = {**os.environ, "WORK": str(tmp_path), "NAMESPACE": "e2e-test", "KUBE_CONTEXT": "kind-x"}
    done = subprocess.run(
        [str(SCRIPT), "--render-only"], capture_output=True, text=True, timeout=120,
        check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validating them against Kubernetes' schemas" in done.stdout
    spec = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    assert spec["environments"]["production"]["backend"] == {
        "kind": "kubernetes", "namespace": "e2e-test", "context": "kind-x"
    }  # fmt: skip
    chat = yaml.safe_load((tmp_path / "manifests" / "08-deployment-chat.yaml").read_text())
    assert chat["metadata"]["namespace"] == "e2e-test" and chat["spec"]["replicas"] == 2
