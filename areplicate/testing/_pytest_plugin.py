"""pytest plugin for areplicate.testing, registered as the ``pytest11`` entry point ``areplicate``.

Fixtures:

- ``fake_replicate``: a fresh :class:`~areplicate.testing.FakeReplicate` (override it in your
  ``conftest.py`` to pass options or add models; the other fixtures use it).
- ``fake_replicate_url``: serves ``fake_replicate`` and yields its base URL
  (``http://127.0.0.1:<port>/v1``). When pytest-asyncio is active it is an async fixture on the
  test's loop, so model callables can share asyncio objects with an async test (a sync test
  would block that loop: use the next fixture). Without pytest-asyncio it serves from a thread.
- ``fake_replicate_thread_url``: serves ``fake_replicate`` from a background thread, for
  synchronous tests and clients.

Teardown fails the test if the fake itself raised an unexpected error (``server_errors``).
Gotcha: this module loads in every pytest run of a project that installs areplicate, so it imports
the fake lazily and decides at ``pytest_configure`` time whether pytest-asyncio is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from areplicate.testing import FakeReplicate

__all__ = ["fake_replicate", "fake_replicate_thread_url", "pytest_configure"]


def check_server_errors(fake: FakeReplicate) -> None:
    """Fail the current test if the fake raised internally while serving it."""
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
    check_server_errors(fake_replicate)


def pytest_configure(config: pytest.Config) -> None:
    """Register ``fake_replicate_url``: on the test's loop with pytest-asyncio, else threaded."""
    if config.pluginmanager.hasplugin("asyncio"):
        name = "areplicate.testing._pytest_loop_url"
    else:
        name = "areplicate.testing._pytest_thread_url"
    config.pluginmanager.import_plugin(name)
