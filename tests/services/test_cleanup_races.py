"""Clean-up races: a create given up twice (by close() and by its caller), a create dropped
while the reaper's listing is read, a stranger's identical create landing just after ours was
given up. Ours are cancelled, theirs never.

Clients with different tokens stand for clients in different processes (no shared ledger); one
FakeReplicate serves one account whatever the token.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

import areplicate
from areplicate.testing import FakeReplicate, Faults

from ._held import Held, settle_cleanup

CANCEL = "POST /v1/predictions/{id}/cancel"
CREATE = "POST /v1/models/{owner}/{name}/predictions"
LIST = "GET /v1/predictions"


async def until(predicate: object, what: str) -> None:
    with anyio.fail_after(15):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - polling the fake
            await asyncio.sleep(0.01)


async def test_a_create_given_up_by_close_then_cancelled_by_its_caller_is_still_reaped(
    held: Held,
) -> None:
    """close() hands a create still on the wire to the reaper; while close() waits for that
    clean-up, the create's own caller gives up too (a timeout, a task group unwinding). The
    create is an orphan once, not twice (which would make its one prediction ambiguous), and
    its prediction is cancelled."""
    fake = FakeReplicate()
    fake.add_model("acme/held", held)
    async with fake.serve() as url:
        client = areplicate.Client("r8_races_a", base_url=url, rate_limits=None)
        task = asyncio.create_task(client.predictions.create("acme/held", {"prompt": "x"}, hold=60))
        await held.until_started(1)
        closing = asyncio.create_task(client.aclose())
        await until(lambda: client._session._cleanup, "close() started the reaper")
        task.cancel()  # the caller gives up while close() waits for the reaper
        with anyio.fail_after(10):
            await asyncio.gather(task, return_exceptions=True)
        with anyio.fail_after(30):
            await closing
        statuses = [p["status"] for p in fake.predictions]
        held.release.set()
    assert statuses == ["canceled"]


async def test_an_orphan_dropped_after_the_listing_was_read_never_makes_a_stranger_ours(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's create (o1) is abandoned; another process (B) made a prediction S with the same input
    meanwhile, so the reaper's listing shows two fits for one orphan: ambiguous, nothing may be
    cancelled. While the listing is still being read (one prediction a page, 3 s a request), A
    drops a second identical create (o2), which the fake never makes. Two fits for two orphans
    would pass a bare count, but both fall in o1's window and none in o2's: S is never touched."""
    from areplicate.testing import _routes_predictions

    monkeypatch.setattr(_routes_predictions, "PAGE_SIZE", 1)
    fake = FakeReplicate(faults=Faults(latency=3.0, routes={CREATE, LIST}))
    fake.add_model("acme/held", held)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_races_b", base_url=url, rate_limits=None) as b,
    ):
        a = areplicate.Client("r8_races_a", base_url=url, rate_limits=None)
        first = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "same"}, hold=60))
        theirs_task = asyncio.create_task(b.predictions.create("acme/held", {"prompt": "same"}))
        await held.until_started(2)
        with anyio.fail_after(10):
            theirs = await theirs_task
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # The listing's first page was served: its second page is cut from the positions it
        # names, so nothing created from now on is in this listing.
        await until(lambda: fake.counts[LIST] >= 2, "the second page was asked for")
        second = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "same"}, hold=60))
        await until(lambda: fake.counts[CREATE] >= 3, "o2 is on the wire")
        assert fake.counts[LIST] == 2  # the listing is still being read
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        await settle_cleanup(a)
        await a.aclose()
        assert fake.prediction(theirs.id)["status"] == "processing"  # B's: never ours
        held.release.set()


async def test_the_look_again_after_the_window_never_cancels_a_later_strangers_prediction(
    held: Held,
) -> None:
    """A's create is cut off before the API made anything of it (it is still in the fake's
    latency when the caller gives up), so the reaper's look finds nothing. Another process (B)
    then sends the same input (a retry of the job A gave up on, say): its prediction S, made
    after the look, is never taken for ours. (A reaper that looked a second time would see one
    fit for one orphan and cancel S.)

    Faults(latency=(0, 8), seed=15) on the create route draws 7.7 s for the first create (A's)
    and 0.09 s for the second (B's)."""
    fake = FakeReplicate(faults=Faults(latency=(0.0, 8.0), seed=15, routes={CREATE}))
    fake.add_model("acme/held", held)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_races_b", base_url=url, rate_limits=None) as b,
    ):
        a = areplicate.Client("r8_races_a", base_url=url, rate_limits=None)
        await a.models.get("acme/held")  # a Date header: A knows the API's clock
        ours = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "same"}))
        await until(lambda: fake.counts[CREATE] >= 1, "A's create is on the wire")
        ours.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ours
        await until(lambda: fake.counts[LIST] >= 1, "the reaper's first look was answered")
        assert not fake.predictions  # the first look found nothing
        with anyio.fail_after(10):
            theirs = await b.predictions.create("acme/held", {"prompt": "same"})
        await settle_cleanup(a)
        await a.aclose()
        assert fake.prediction(theirs.id)["status"] == "processing"  # B's: never ours
        held.release.set()


async def test_closing_under_a_fan_out_step_whose_create_runs_in_a_child_task_reaps_it(
    held: Held,
) -> None:
    """A fan-out step (a user callable) runs its create in a child task (``asyncio.gather``):
    that task is not one of the client's fan-out workers, so close() gives the create up both
    through its registration and as the cancelled worker's child unwinds. Once counts: the
    prediction is cancelled."""
    fake = FakeReplicate()
    fake.add_model("acme/held", held)

    async def step(client: areplicate.Client, item: str) -> object:
        (prediction,) = await asyncio.gather(
            client.predictions.create("acme/held", {"prompt": item}, hold=60)
        )
        return prediction

    async with fake.serve() as url:
        client = areplicate.Client("r8_races_a", base_url=url, rate_limits=None)

        async def consume() -> None:
            async for _ in areplicate.as_completed(client, step, ["x"]):
                pass

        consumer = asyncio.create_task(consume())
        await held.until_started(1)
        with anyio.fail_after(30):
            await client.aclose()
        consumer.cancel()
        with anyio.fail_after(10):
            await asyncio.gather(consumer, return_exceptions=True)
        statuses = [p["status"] for p in fake.predictions]
        held.release.set()
    assert statuses == ["canceled"]
