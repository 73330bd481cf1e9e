"""Values spelt as YAML read back as the same values; keyword fields lose their ``_``."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from llmfleet.spec.spelling import spec_key, spelt

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(min_size=1, max_size=8).filter(lambda k: k == spec_key(k)), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@given(values)
def test_spelt_value_reads_back_as_the_value(value: Any) -> None:
    assert yaml.safe_load(spelt(value)) == value


def test_spelling_as_written() -> None:
    assert spelt({"kind": "replica_down", "for_": "1m", "threshold": None}) == (
        "{kind: replica_down, for: 1m, threshold: null}"
    )
    assert spelt(["--tps", "500", "1.20", "true", ""]) == '[--tps, "500", "1.20", "true", ""]'
    assert spelt("least-load") == "least-load"
    assert spec_key("class_") == "class" and spec_key("prefix_") == "prefix_"
