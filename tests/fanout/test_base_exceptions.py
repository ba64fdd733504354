"""Every item of a fan-out gets a result or an error, and nothing hangs, whatever a step raises:
a BaseException that is not a cancellation ends the fan-out, raised to its caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import areplicate
from areplicate.testing import FakeReplicate


class Abort(BaseException):
    """A BaseException that is not a cancellation (pytest.fail() raises one of these, as do
    other frameworks' control-flow exceptions)."""


async def step(client: areplicate.Client, item: int) -> int:
    if item == 0:
        raise Abort("the step gave up")
    return item


@pytest.fixture
async def client() -> AsyncIterator[areplicate.Client]:
    fake = FakeReplicate()
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as c,
    ):
        yield c


async def test_a_step_raising_a_base_exception_does_not_hang_the_fan_out(
    client: areplicate.Client,
) -> None:
    """With concurrency 1, a step raising a BaseException other than CancelledError frees its
    slot and ends the fan-out: gather_predictions raises it instead of waiting for ever."""
    with anyio.fail_after(5), pytest.raises(Abort):
        await areplicate.gather_predictions(client, step, [0, 1], concurrency=1)


async def test_a_step_raising_a_base_exception_is_not_silently_dropped(
    client: areplicate.Client,
) -> None:
    """With room for both items, the BaseException is not lost: gather_predictions raises it,
    or (were it ever turned into a result) returns one result per input, in order."""
    with anyio.fail_after(5):
        try:
            results = await areplicate.gather_predictions(
                client, step, [0, 1], concurrency=2, return_exceptions=True
            )
        except Abort:
            return  # reported: fine
    assert len(results) == 2, f"two inputs, results {results!r}"
