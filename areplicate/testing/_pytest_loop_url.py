"""The async half of ``fake_replicate_url``: serving on the test's loop (with pytest-asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest_asyncio

from areplicate.testing._pytest_plugin import check_server_errors

if TYPE_CHECKING:
    from areplicate.testing import FakeReplicate

__all__ = ["_fake_replicate_loop_url"]


@pytest_asyncio.fixture
async def _fake_replicate_loop_url(fake_replicate: FakeReplicate) -> AsyncIterator[str]:
    """``fake_replicate`` served on the test's loop; yields the base URL."""
    async with fake_replicate.serve() as url:
        yield url
    check_server_errors(fake_replicate)
