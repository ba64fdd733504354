"""``fake_replicate_url`` from a server thread (loaded when pytest-asyncio is not active)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from areplicate.testing._pytest_plugin import check_server_errors

if TYPE_CHECKING:
    from areplicate.testing import FakeReplicate

__all__ = ["fake_replicate_url"]


@pytest.fixture
def fake_replicate_url(fake_replicate: FakeReplicate) -> Iterator[str]:
    """``fake_replicate`` served from a background thread; yields the base URL."""
    with fake_replicate.serve_in_thread() as url:
        yield url
    check_server_errors(fake_replicate)
