"""Fixtures for the Kubernetes tests: the fake API server, started and stopped per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.kubernetes.fake_api import FakeApiServer


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[FakeApiServer]:
    """The fake API server with its controllers on: Deployments get pods that turn ready."""
    with FakeApiServer(controller=True) as server:
        yield server
