"""Fixtures of the integration tests: a real redis-server per module."""

from __future__ import annotations

import pytest

from service.store.embedded import start_embedded_redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
