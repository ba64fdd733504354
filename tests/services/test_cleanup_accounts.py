"""Clean-up when several clients share one account: it cancels only a prediction provably ours.

Two workers on one token may send the same input at the same moment. When worker A's caller is
cancelled with its create on the wire, A's clean-up must find A's orphan, never B's prediction. One
FakeReplicate serves one account whatever the token, so clients with different tokens here stand for
clients in different processes (they share no ledger); clients with the same token share one, as
clients of one process do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator

import attrs
import pytest

import areplicate
from areplicate._core.times import date_offset
from areplicate._ledger import Intent
from areplicate.testing import FakeReplicate

from ._held import Held, settle_cleanup, status

CANCEL = "POST /v1/predictions/{id}/cancel"


@pytest.fixture
async def fake(held: Held) -> AsyncIterator[FakeReplicate]:
    fake = FakeReplicate()
    fake.add_model("acme/held", held)
    yield fake
    held.release.set()


@pytest.fixture
async def url(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as base_url:
        yield base_url


async def start_held_create(client: areplicate.Client, held: Held, n: int) -> asyncio.Task[object]:
    """A create held open by ``Prefer: wait`` until the model is released; returns once it runs."""
    task = asyncio.create_task(client.predictions.create("acme/held", {"prompt": "same"}, hold=60))
    await held.until_started(n)
    return task


async def cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_sibling_client_of_the_same_token_keeps_its_prediction(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    a = areplicate.Client("r8_same", base_url=url, rate_limits=None)
    async with areplicate.Client("r8_same", base_url=url, rate_limits=None) as b:
        task = await start_held_create(a, held, 1)
        theirs = await b.predictions.create("acme/held", {"prompt": "same"})  # newer: listed first
        await cancel(task)
        await settle_cleanup(a)
        await a.aclose()
        assert status(fake, theirs.id) == "processing"
        ours = [p["id"] for p in fake.predictions if p["id"] != theirs.id]
        assert [status(fake, pid) for pid in ours] == ["canceled"]


async def test_another_process_sending_the_same_input_meanwhile_is_never_cancelled(
    url: str, fake: FakeReplicate, held: Held, caplog: pytest.LogCaptureFixture
) -> None:
    a = areplicate.Client("r8_worker_a", base_url=url, rate_limits=None)
    async with areplicate.Client("r8_worker_b", base_url=url, rate_limits=None) as b:
        task = await start_held_create(a, held, 1)
        theirs = await b.predictions.create("acme/held", {"prompt": "same"})
        with caplog.at_level(logging.WARNING, logger="areplicate"):
            await cancel(task)
            await settle_cleanup(a)
            await a.aclose()
        # Two predictions fit A's abandoned create and A cannot tell which is its own: both run.
        assert status(fake, theirs.id) == "processing"
        assert fake.counts[CANCEL] == 0
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert all(p["id"] in warnings[0] for p in fake.predictions)


async def test_a_create_that_never_reached_the_wire_cancels_nothing(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    # One connection, taken by a create held open: A's next create waits for the connection.
    a = areplicate.Client("r8_worker_a", base_url=url, rate_limits=None, max_connections=1)
    async with areplicate.Client("r8_worker_b", base_url=url, rate_limits=None) as b:
        hog = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "hog"}, hold=60))
        await held.until_started(1)
        queued = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "same"}))
        theirs = await b.predictions.create("acme/held", {"prompt": "same"})
        await held.until_started(2)
        await cancel(queued)  # still waiting for a connection: nothing of it reached the API
        await settle_cleanup(a)
        assert status(fake, theirs.id) == "processing"
        assert fake.counts[CANCEL] == 0
        held.release.set()
        await hog
        await a.aclose()
        assert len(fake.predictions) == 2


async def test_an_orphan_alone_in_its_window_is_cancelled(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    async with areplicate.Client("r8_worker_b", base_url=url, rate_limits=None) as b:
        earlier = await b.predictions.create("acme/held", {"prompt": "same"})  # before A sent
        await held.until_started(1)
        # A gap on the clock, not a race: the API's Date header has whole seconds, so A can only
        # place its window to within about two seconds on the API's clock.
        await asyncio.sleep(2.5)
        a = areplicate.Client("r8_worker_a", base_url=url, rate_limits=None)
        task = await start_held_create(a, held, 2)
        await cancel(task)
        await settle_cleanup(a)
        await a.aclose()
        assert status(fake, earlier.id) == "processing"
        ours = [p["id"] for p in fake.predictions if p["id"] != earlier.id]
        assert [status(fake, pid) for pid in ours] == ["canceled"]


class TestWindow:
    """The window read on the API's clock, from a Date header: pure arithmetic."""

    def prediction(self, created: float) -> areplicate.Prediction:
        return areplicate.Prediction(
            id="p",
            model="acme/m",
            input={"x": 1},
            status=areplicate.Status.PROCESSING,
            created_at=dt.datetime.fromtimestamp(created, dt.timezone.utc),
        )

    def intent(self, sent_at: float, abandoned_at: float) -> Intent:
        return Intent("acme/m", None, None, {"x": 1}, sent_at, [sent_at], abandoned_at)

    def test_date_offset_bounds_the_skew(self) -> None:
        # The API's clock runs 30 s ahead; its Date header (whole seconds) read at 1000.4 local.
        low, high = date_offset("Thu, 01 Jan 1970 00:17:10 GMT", 1000.4)  # type: ignore[misc]
        assert low <= 30.0 <= high
        assert high - low <= 2.0
        assert date_offset(None, 0.0) is None
        assert date_offset("not a date", 0.0) is None

    def test_a_skewed_api_clock_is_allowed_for(self) -> None:
        intent = self.intent(sent_at=1000.0, abandoned_at=1001.0)
        offset = (29.6, 31.6)  # the API is about 30 s ahead
        assert intent.could_be(self.prediction(1030.5), offset)
        # Made 10 s before we sent (on the API's clock): someone else's.
        assert not intent.could_be(self.prediction(1020.0), offset)
        # Without the skew allowed for, our own would look 30 s too late to be ours.
        assert not intent.could_be(self.prediction(1030.5), (0.0, 0.0))

    def test_another_input_never_fits(self) -> None:
        intent = self.intent(sent_at=1000.0, abandoned_at=1001.0)
        other = attrs.evolve(self.prediction(1000.5), input={"x": 2})
        assert not intent.could_be(other, (0.0, 2.0))
