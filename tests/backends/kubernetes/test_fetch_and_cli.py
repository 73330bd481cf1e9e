"""The model-fetch init container's entry point, and ``llmfleet render``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import yaml

from llmfleet.backends.kubernetes.fetch import main as fetch_main
from tests.backends.kubernetes.cases import SPECS

LLMFLEET = [sys.executable, "-m", "llmfleet"]


def _volume(tmp_path: Path) -> tuple[Path, str]:
    weights = tmp_path / "weights" / "m.gguf"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"GGUF fake weights")
    return tmp_path, hashlib.sha256(weights.read_bytes()).hexdigest()


def test_fetch_checks_the_sha256_and_points_the_link_at_the_model(tmp_path: Path) -> None:
    root, digest = _volume(tmp_path)
    argv = ["--source", "file:weights/m.gguf", "--root", str(root), "--link", "chat.gguf"]
    assert fetch_main([*argv, "--sha256", digest]) == 0
    link = root / "chat.gguf"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.read_bytes() == b"GGUF fake weights"
    assert fetch_main(argv) == 0, "fetching again (a restarted pod) replaces the link"


def test_fetch_refuses_a_model_whose_sha256_differs(tmp_path: Path) -> None:
    root, _ = _volume(tmp_path)
    argv = ["--source", "file:weights/m.gguf", "--root", str(root), "--link", "chat.gguf"]
    assert fetch_main([*argv, "--sha256", "0" * 64]) == 1
    assert not (root / "chat.gguf").exists()


def test_render_kubernetes_writes_one_file_per_object_in_apply_order(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    done = subprocess.run(
        [*LLMFLEET, "render", "kubernetes", "-f", str(SPECS["quickstart"]), "-e", "staging",
         "-o", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files[0] == "01-serviceaccount-llmfleet-gateway.yaml"
    assert files[-1] == f"{len(files):02d}-networkpolicy-llmfleet-engines.yaml"
    assert "chat-engine-key" in done.stderr, "the Secret to create is named"
    deployment = yaml.safe_load((out / "08-deployment-chat.yaml").read_text())
    assert deployment["metadata"]["namespace"] == "quickstart-staging"


def test_render_of_an_unknown_environment_says_which_exist() -> None:
    done = subprocess.run(
        [*LLMFLEET, "render", "kubernetes", "-f", str(SPECS["quickstart"]), "-e", "prod"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no environment 'prod'" in done.stderr and "production, staging" in done.stderr


def test_render_compose_keeps_engines_on_an_internal_network() -> None:
    done = subprocess.run(
        [*LLMFLEET, "render", "compose", "-f", str(SPECS["quickstart"])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    compose = yaml.safe_load(done.stdout)
    assert compose["networks"]["engines"] == {"internal": True}
    chat = compose["services"]["chat"]
    assert chat["networks"] == ["engines"] and "ports" not in chat
    assert chat["depends_on"] == {"chat-fetch": {"condition": "service_completed_successfully"}}
    assert chat["environment"]["LLAMA_API_KEY"].startswith("${LLMFLEET_KEY_CHAT:?")
    assert compose["services"]["gateway"]["ports"] == ["127.0.0.1:8080:8080"]
