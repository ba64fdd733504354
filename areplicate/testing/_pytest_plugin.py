"""pytest plugin for areplicate.testing, registered as the ``pytest11`` entry point ``areplicate``.

Fixtures:

- ``fake_replicate``: a fresh :class:`~areplicate.testing.FakeReplicate` (override it in your
  ``conftest.py`` to pass options or add models; the other fixtures use it).
- ``fake_replicate_url``: serves ``fake_replicate`` and yields its base URL
  (``http://127.0.0.1:<port>/v1``). With pytest-asyncio installed it is an async fixture on the
  test's loop, so model callables can share asyncio objects with the test; without it, it falls
  back to a server thread.
- ``fake_replicate_thread_url``: serves ``fake_replicate`` from a background thread, for
  synchronous clients (a sync test would block an in-loop server).

Teardown fails the test if the fake itself raised an unexpected error (``server_errors``).
Gotcha: this module loads in every pytest run of a project that installs areplicate, so it imports
the fake lazily and works without pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from areplicate.testing import FakeReplicate

_asyncio_fixture: Any
try:
    from pytest_asyncio import fixture as _asyncio_fixture
except ImportError:  # pragma: no cover - exercised only where pytest-asyncio is absent
    _asyncio_fixture = None

__all__ = ["fake_replicate", "fake_replicate_thread_url", "fake_replicate_url"]


def _check(fake: FakeReplicate) -> None:
    if fake.server_errors:
        errors = "; ".join(repr(e) for e in fake.server_errors)
        pytest.fail(f"the fake Replicate server failed internally: {errors}", pytrace=False)


@pytest.fixture
def fake_replicate() -> FakeReplicate:
    """A fresh FakeReplicate with no models (add them with ``add_model``)."""
    from areplicate.testing import FakeReplicate

    return FakeReplicate()


@pytest.fixture
def fake_replicate_thread_url(fake_replicate: FakeReplicate) -> Iterator[str]:
    """``fake_replicate`` served from a background thread; yields the base URL."""
    with fake_replicate.serve_in_thread() as url:
        yield url
    _check(fake_replicate)


async def _served(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as url:
        yield url
    _check(fake)


def _threaded(fake: FakeReplicate) -> Iterator[str]:
    with fake.serve_in_thread() as url:
        yield url
    _check(fake)


_fixture: Any
if _asyncio_fixture is not None:

    async def _fake_replicate_url_async(fake_replicate: FakeReplicate) -> AsyncIterator[str]:
        """``fake_replicate`` served on the test's event loop; yields the base URL."""
        async for url in _served(fake_replicate):
            yield url

    _fixture = _asyncio_fixture(_fake_replicate_url_async, name="fake_replicate_url")
else:  # pragma: no cover - exercised only where pytest-asyncio is absent

    def _fake_replicate_url_thread(fake_replicate: FakeReplicate) -> Iterator[str]:
        """``fake_replicate`` served from a thread (pytest-asyncio is not installed)."""
        yield from _threaded(fake_replicate)

    _fixture = pytest.fixture(_fake_replicate_url_thread, name="fake_replicate_url")

fake_replicate_url = _fixture
