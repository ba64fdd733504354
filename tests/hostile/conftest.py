"""Fixtures for the hostile-server suite: a scripted misbehaving server and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import stamina

import areplicate
from tests.hostile.server import TOKEN, Hostile


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    """A fresh scripted server on 127.0.0.1 and a free port."""
    async with Hostile() as server:
        yield server


@pytest.fixture
async def client(hostile: Hostile) -> AsyncIterator[areplicate.Client]:
    """A client of the hostile server, with retries' backoff zeroed (their count still applies)."""
    stamina.set_testing(True, attempts=4)
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=5
    ) as c:
        yield c
