"""``fake_replicate_url`` on the test's event loop (loaded when pytest-asyncio is active)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest_asyncio

from areplicate.testing._pytest_plugin import check_server_errors

if TYPE_CHECKING:
    from areplicate.testing import FakeReplicate

__all__ = ["fake_replicate_url"]


@pytest_asyncio.fixture
async def fake_replicate_url(fake_replicate: FakeReplicate) -> AsyncIterator[str]:
    """``fake_replicate`` served on the test's loop; yields the base URL."""
    async with fake_replicate.serve() as url:
        yield url
    check_server_errors(fake_replicate)
