"""The commented example that `llmfleet init` writes; read from package data.

The runnable quickstart lives at ``examples/quickstart.yaml`` in the repository
(the one source of truth for it); the package carries only this template.
"""

from __future__ import annotations

from importlib import resources

INIT_TEMPLATE = "examples/fleet.yaml"


def init_template() -> str:
    """The text of the commented ``fleet.yaml`` that ``llmfleet init`` writes."""
    return resources.files("llmfleet").joinpath(INIT_TEMPLATE).read_text(encoding="utf-8")
