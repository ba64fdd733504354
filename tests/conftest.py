"""Suite-wide setup, kept small: hypothesis without deadlines; stamina's switches are process-global, so put them back after each test."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from hypothesis import settings
from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks

import areplicate
from areplicate.testing import FakeReplicate

# No per-example deadline: it is a timing assertion, and on two shared cores a first example that
# allocates a 200,000-deep input ran 378 ms against hypothesis's 200 ms and failed CI. Speed
# belongs to benchmarks/; "linear, not quadratic" is asserted by the tests that mean it.
settings.register_profile("areplicate", deadline=None)
settings.load_profile("areplicate")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per core, since about half of the suite's wall time is waiting.

    Real sockets, real subprocesses and fakes pacing in real time leave a core idle while a test
    waits: on two cores, four workers run the suite in about two thirds of the time two take.
    """
    return min(2 * (os.cpu_count() or 1), 16)


if sys.version_info < (3, 11):
    # Tests bound their waits with `async with asyncio.timeout(...)`, new in 3.11; on 3.10 (which the
    # package supports, and CI runs) the async-timeout backport provides the same context manager.
    import async_timeout

    asyncio.timeout = async_timeout.timeout  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _reset_stamina() -> Iterator[None]:
    """Undo ``stamina.set_testing`` / ``set_active`` / retry hooks a test may have changed."""
    hooks = get_on_retry_hooks()
    yield
    stamina.set_testing(False)
    stamina.set_active(True)
    set_on_retry_hooks(hooks)


@pytest.fixture
async def base_url(fake: FakeReplicate) -> AsyncIterator[str]:
    """The directory's (or module's) ``fake``, served on the test's loop."""
    async with fake.serve() as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[areplicate.Client]:
    """A Client on ``base_url``, pacing off."""
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        yield c
