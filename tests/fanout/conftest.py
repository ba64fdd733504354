"""What the fan-out tests share: a client on the module's own ``fake`` (each test module defines
that fixture with the models it needs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import areplicate
from areplicate.testing import FakeReplicate


@pytest.fixture
async def base_url(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[areplicate.Client]:
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        yield c
