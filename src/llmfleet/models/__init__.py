"""Model sources (wheel, file, hub) resolved into a local, checksummed cache."""

from __future__ import annotations

from llmfleet.models.sources import Source, parse_source
from llmfleet.models.store import ModelStore, ResolvedModel, sha256_file

__all__ = ["ModelStore", "ResolvedModel", "Source", "parse_source", "sha256_file"]
