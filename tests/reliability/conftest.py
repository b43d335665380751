"""Fixtures of the reliability suite: one external Redis and one service process for the
session (restarted on demand after a test kills it), so few tests pay for a startup."""

from __future__ import annotations

import pytest

from tests.reliability.harness import RedisHolder, ServiceSlot


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
