"""pytest plugin for areplicate.testing, registered as the ``pytest11`` entry point ``areplicate``.

Fixtures:

- ``fake_replicate``: a fresh :class:`~areplicate.testing.FakeReplicate` (override it in your
  ``conftest.py`` to pass options or add models; the other fixtures use it).
- ``fake_replicate_url``: serves ``fake_replicate`` and yields its base URL
  (``http://127.0.0.1:<port>/v1``). For an ``async def`` test (with pytest-asyncio) it serves on
  the test's loop, so model callables can share asyncio objects with the test; for a plain
  ``def`` test (a Starlette ``TestClient``, the official ``replicate`` client) it serves from a
  background thread, since the test would block a loop it shares.
- ``fake_replicate_thread_url``: always serves ``fake_replicate`` from a background thread.

Teardown fails the test if the fake itself raised an unexpected error (``server_errors``).
Gotcha: this module loads in every pytest run of a project that installs areplicate, so it imports
the fake lazily and decides at ``pytest_configure`` time whether pytest-asyncio is there.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from areplicate.testing import FakeReplicate

__all__ = [
    "fake_replicate",
    "fake_replicate_thread_url",
    "fake_replicate_url",
    "pytest_configure",
]


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


@pytest.fixture
def fake_replicate_url(
    request: pytest.FixtureRequest, fake_replicate: FakeReplicate
) -> Iterator[str]:
    """``fake_replicate`` served on an async test's loop, or from a thread for a sync test."""
    test = getattr(request.node, "obj", None)
    on_loop = inspect.iscoroutinefunction(test) and request.config.pluginmanager.hasplugin(
        "asyncio"
    )
    if on_loop:
        # The async fixture runs on the loop the test will run on (pytest-asyncio's).
        yield request.getfixturevalue("_fake_replicate_loop_url")
        return
    with fake_replicate.serve_in_thread() as url:
        yield url
    check_server_errors(fake_replicate)


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-asyncio, register the async fixture ``fake_replicate_url`` uses for async tests."""
    if config.pluginmanager.hasplugin("asyncio"):
        config.pluginmanager.import_plugin("areplicate.testing._pytest_loop_url")
