"""When the caller gives up: exactly the right remote predictions are cancelled, and quickly.

These pin down the cases a review found: identical inputs in flight together, a create cancelled
before it was sent, a dropped create the user is told to recover, a client closed while a
fan-out handle is still referenced, and many predictions under a tight request budget.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

import areplicate
from areplicate import Status
from areplicate.testing import FakeReplicate, Faults

from ._held import Held
from ._local import serve_app

CREATE = "POST /v1/models/{owner}/{name}/predictions"
CANCEL = "POST /v1/predictions/{id}/cancel"


@pytest.fixture
def fake(held: Held) -> FakeReplicate:
    fake = FakeReplicate()
    fake.add_model("acme/held", held)
    fake.add_model("acme/echo", lambda prompt="": prompt)
    return fake


@pytest.fixture
async def url(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as base_url:
        yield base_url


def statuses(fake: FakeReplicate) -> dict[str, str]:
    return {p["id"]: p["status"] for p in fake.predictions}


async def test_cancelling_one_of_two_identical_runs_leaves_the_other_alone(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    async with areplicate.Client("r8_test", base_url=url, rate_limits=None) as client:
        a = asyncio.create_task(client.run("acme/held", {"prompt": "same"}))
        b = asyncio.create_task(client.run("acme/held", {"prompt": "same"}, hold=1))
        await held.until_started(2)  # both creates are held open by Prefer: wait
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        # The clean-up waits for B's create to answer (its id is then known), so only A's
        # prediction can be taken for the orphan.
        while fake.counts[CANCEL] == 0:  # noqa: ASYNC110 - polling the fake's state
            await asyncio.sleep(0.05)
        held.release.set()
        assert await b == "same"
    assert sorted(statuses(fake).values()) == ["canceled", "succeeded"]


async def test_a_create_cancelled_before_it_was_sent_cancels_nothing(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    async with areplicate.Client("r8_other", base_url=url, rate_limits=None) as other:
        theirs = await other.predictions.create("acme/held", {"prompt": "same"})
        slow = areplicate.RateLimits(creates_per_minute=1, requests_per_minute=60, burst=1)
        async with areplicate.Client("r8_test", base_url=url, rate_limits=slow) as client:
            await client.predictions.create("acme/echo", {"prompt": "uses the one token"})
            queued = asyncio.create_task(client.predictions.create("acme/held", {"prompt": "same"}))
            await asyncio.sleep(0.2)  # it is waiting for the budget, not on the wire
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        assert fake.prediction(theirs.id)["status"] == "processing"
        assert fake.counts[CANCEL] == 0
        held.release.set()
        assert (await other.predictions.wait(theirs)).status == Status.SUCCEEDED


async def test_a_dropped_create_is_left_for_the_caller_to_recover(held: Held) -> None:
    fake = FakeReplicate(faults=Faults(drop_rate=1.0, routes={CREATE}, seed=1))
    fake.add_model("acme/held", held)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        sent_at = asyncio.get_running_loop().time()
        with pytest.raises(areplicate.APIConnectionError) as info:
            await client.predictions.create("acme/held", {"prompt": "lost"})
        assert info.value.sent
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
        found = await client.predictions.find({"prompt": "lost"}, created_after=since)
        assert len(found) == 1
        held.release.set()
        done = await client.predictions.wait(found[0])
        assert done.status == Status.SUCCEEDED  # nobody cancelled it behind our back
        assert asyncio.get_running_loop().time() - sent_at < 10


async def test_closing_the_client_under_a_live_fan_out_handle_cancels_its_work(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    started = asyncio.get_running_loop().time()
    async with areplicate.Client("r8_test", base_url=url, rate_limits=None) as client:
        results = areplicate.as_completed(
            client, "acme/held", [{"prompt": str(i)} for i in range(40)], concurrency=8
        )
        consumer = asyncio.create_task(results.__anext__())
        await held.until_started(8)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        # `results` is still referenced here; leaving the client must stop its work anyway.
    assert asyncio.get_running_loop().time() - started < 10
    assert fake.running == 0
    assert set(statuses(fake).values()) == {"canceled"}
    assert len(fake.predictions) == 8


async def test_clean_up_does_not_queue_behind_a_tight_budget(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    tight = areplicate.RateLimits(creates_per_minute=6000, requests_per_minute=60, burst=1)
    async with areplicate.Client("r8_test", base_url=url, rate_limits=tight) as client:
        task = asyncio.create_task(
            areplicate.gather_predictions(
                client, "acme/held", [{"prompt": str(i)} for i in range(30)], concurrency=30
            )
        )
        await held.until_started(30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fake.running == 0
    assert set(statuses(fake).values()) == {"canceled"}


async def test_stream_events_with_inherited_ids_are_all_delivered() -> None:
    """An event without an id line inherits the previous id; it is not a duplicate."""

    async def prediction(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {"id": "p1", "status": "processing", "urls": {"stream": f"{base}/stream"}}
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(
            b"id: 1\nevent: output\ndata: a\n\nevent: output\ndata: b\n\nevent: done\ndata: {}\n\n"
        )
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/predictions/p1", prediction)
    app.router.add_get("/stream", stream)
    async with (
        serve_app(app) as origin,
        areplicate.Client("r8_test", base_url=origin, rate_limits=None) as client,
    ):
        events = [(e.event, e.data) async for e in client.predictions.stream("p1")]
    assert events == [("output", "a"), ("output", "b"), ("done", "{}")]


async def test_a_repeated_next_link_ends_the_listing() -> None:
    hits = 0

    async def page(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        base = f"http://{request.host}/v1"
        return web.json_response(
            {"results": [{"id": "p1"}], "next": f"{base}/predictions?cursor=same", "previous": None}
        )

    app = web.Application()
    app.router.add_get("/v1/predictions", page)
    async with (
        serve_app(app) as origin,
        areplicate.Client("r8_test", base_url=origin, rate_limits=None) as client,
    ):
        ids = [p.id async for p in client.predictions.list()]
    assert ids == ["p1"]  # the second page's p1 was already yielded
    assert hits == 2


async def test_an_abandoned_deployment_create_only_claims_a_deployment_prediction(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    fake.add_deployment("acme/held-prod", model="acme/held")
    async with areplicate.Client("r8_other", base_url=url, rate_limits=None) as other:
        async with areplicate.Client("r8_test", base_url=url, rate_limits=None) as client:
            task = asyncio.create_task(
                client.deployments.predictions.create(
                    "acme/held-prod", {"prompt": "same"}, hold=True
                )
            )
            await held.until_started(1)  # our deployment create is held open by Prefer: wait
            # Newer, so listed first: input alone would take it for our orphan.
            theirs = await other.predictions.create("acme/held", {"prompt": "same"})
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # Same input, another client's plain-model prediction: not ours to cancel.
        assert fake.prediction(theirs.id)["status"] == "processing"
        ours = [p for p in fake.predictions if p.get("deployment") == "acme/held-prod"]
        assert [p["status"] for p in ours] == ["canceled"]
        held.release.set()
        assert (await other.predictions.wait(theirs)).status == Status.SUCCEEDED
