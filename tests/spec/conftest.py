"""Helpers for the spec tests: load text, get back the rendered problems."""

from __future__ import annotations

from textwrap import dedent

import pytest

from llmfleet.errors import SpecError
from llmfleet.spec import load_spec_text


def problems_of(text: str) -> list[str]:
    """The rendered problems of a spec that must fail to load."""
    with pytest.raises(SpecError) as caught:
        load_spec_text(dedent(text), filename="fleet.yaml")
    return [problem.render() for problem in caught.value.problems]
