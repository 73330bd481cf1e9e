"""Runnable examples shipped with llmfleet: ``fleet.yaml`` (what ``llmfleet init`` writes) and
the docs-assistant agent of ``examples/rag.yaml``."""
