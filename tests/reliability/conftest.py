"""Fixtures of the reliability suite: one external Redis and one service process for the
session (restarted on demand after a test kills it), so few tests pay for a startup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.reliability import RedisHolder, ServiceSlot

SOAK_ENV = "UNIPELT_SOAK"
HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"soak: minutes-long load or fault loop; runs only with {SOAK_ENV}=1"
    )
    config.addinivalue_line(
        "markers", "kills_service: kills the shared service process; runs after the others"
    )


def pytest_collection_modifyitems(config, items):
    """Skip soak tests unless asked; run this folder's service killers after its other tests,
    so that the shared service starts once plus once per kill."""
    here = [i for i, item in enumerate(items) if HERE in item.path.parents]
    ordered = sorted((items[i] for i in here), key=lambda it: "kills_service" in it.keywords)
    for i, item in zip(here, ordered):
        items[i] = item
    if os.environ.get(SOAK_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"soak test: set {SOAK_ENV}=1 to run it")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The redis-server the service reaches through REDIS_URL; tests may stop or freeze it."""
    holder = RedisHolder(tmp_path_factory.mktemp("redis"))
    yield holder
    holder.stop()


@pytest.fixture(scope="session")
def slot(redis_server, tmp_path_factory):
    slot = ServiceSlot(tmp_path_factory.mktemp("service"), redis_server)
    yield slot
    slot.stop()


@pytest.fixture
def service(slot):
    """The running service (started, or restarted after a test killed it)."""
    return slot.get()
