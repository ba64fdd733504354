"""Fixtures for the request-budget tests: a real Redis server (see _redis.py)."""

from __future__ import annotations

import pytest

from ._redis import RedisServer, redis_server

__all__ = ["redis_server", "redis_url"]


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty Redis database."""
    redis_server.flush()
    return redis_server.url
