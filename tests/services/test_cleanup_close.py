"""Closing a client while one of its calls still runs (in another task) gives that call up: its
remote prediction is cancelled before the pool closes, as for a cancelled caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import pytest

import areplicate
from areplicate.testing import FakeReplicate

from ._held import Held

GET = "GET /v1/predictions/{id}"


@pytest.fixture
async def served(held: Held) -> AsyncIterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()
    fake.add_model("acme/held", held)
    async with fake.serve() as url:
        yield fake, url
        held.release.set()


async def test_closing_the_client_under_a_running_wait_cancels_its_prediction(
    served: tuple[FakeReplicate, str], held: Held
) -> None:
    """A ``client.run`` in a task of its own is polling when the client is closed: close() sends
    the wait's remote cancel before the pool closes, and the call ends with an error (its next
    poll meets the closed client)."""
    fake, url = served
    async with areplicate.Client("r8_test", base_url=url, rate_limits=None) as client:
        task = asyncio.create_task(client.run("acme/held", {"prompt": "x"}, hold=False))
        await held.until_started(1)
        with anyio.fail_after(10):
            while fake.counts[GET] < 1:  # noqa: ASYNC110 - the wait is polling
                await asyncio.sleep(0.01)
    with anyio.fail_after(10):
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, BaseException)  # the call did not get its result
    assert [p["status"] for p in fake.predictions] == ["canceled"], repr(outcome)


async def test_closing_the_client_under_a_create_on_the_wire_cancels_its_prediction(
    served: tuple[FakeReplicate, str], held: Held
) -> None:
    """The same with the create still on the wire (held open by Prefer: wait): close() hands the
    create to the reaper, which finds the prediction the API made and cancels it before the pool
    closes."""
    fake, url = served
    async with areplicate.Client("r8_test", base_url=url, rate_limits=None) as client:
        task = asyncio.create_task(client.predictions.create("acme/held", {"prompt": "x"}, hold=60))
        await held.until_started(1)
    with anyio.fail_after(10):
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
    # Either the broken request's error, or the held answer of the prediction close() cancelled.
    if isinstance(outcome, areplicate.Prediction):
        assert outcome.status == "canceled"
    else:
        assert isinstance(outcome, BaseException)
    assert [p["status"] for p in fake.predictions] == ["canceled"], repr(outcome)


async def test_a_create_queued_for_the_budget_when_the_client_closes_is_never_sent(
    held: Held,
) -> None:
    """A create waiting out a 429 pause when close() begins is given up before it goes out
    again: close() spends a while on another call's clean-up (a slow cancel), the pause ends
    meanwhile, and the create raises instead of making a prediction that would outlive the pool."""
    from areplicate.testing import FakeRateLimits, Faults

    fake = FakeReplicate(
        rate_limits=FakeRateLimits(creates_per_minute=60, creates_burst=1),
        faults=Faults(latency=3.0, routes={"POST /v1/predictions/{id}/cancel"}),
    )
    fake.add_model("acme/held", held)
    async with fake.serve() as url:
        async with areplicate.Client("r8_test", base_url=url, rate_limits=None) as client:
            running = asyncio.create_task(client.run("acme/held", {"prompt": "a"}, hold=False))
            await held.until_started(1)
            # The fake's next create slot is a second away: this one gets a 429 and waits.
            queued = asyncio.create_task(
                client.predictions.create("acme/held", {"prompt": "b"}, hold=False)
            )
            with anyio.fail_after(10):
                while client.stats.throttled < 1:  # noqa: ASYNC110 - polling the client's counters
                    await asyncio.sleep(0.01)
        with anyio.fail_after(10):
            outcomes = await asyncio.gather(running, queued, return_exceptions=True)
        held.release.set()
    assert isinstance(outcomes[0], BaseException), outcomes[0]
    assert isinstance(outcomes[1], RuntimeError), outcomes[1]
    assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 2  # one of them a 429
    assert [p["status"] for p in fake.predictions] == ["canceled"]
