"""Shared fixtures. Real components (PostgreSQL, llama-server, the model) are
installed and started by the fixture modules below, never skipped."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.engines",
    "tests.fixtures.fleet",
]
