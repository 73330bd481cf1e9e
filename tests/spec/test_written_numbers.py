"""A number where a string belongs is quoted in the suggestion as it was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.errors import SpecError
from llmfleet.spec.loading import load_spec

SPEC = """services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: VERSION}
environments:
  production: {gateway: {port: 18080}}
"""


@pytest.mark.parametrize("written", ["1.20", "1.0", "2", "1.5e+3", "0x1F"])
def test_quote_suggestion_keeps_the_digits_as_written(tmp_path: Path, written: str) -> None:
    """``version: 1.20`` is read as the float 1.2; the fix says ``"1.20"``, not ``"1.2"``."""
    spec = tmp_path / "fleet.yaml"
    spec.write_text(SPEC.replace("VERSION", written))
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert f'(quote it: "{written}")' in caught.value.message, caught.value.message
    assert f"got {written} " in caught.value.message
