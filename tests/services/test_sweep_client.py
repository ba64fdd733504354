"""Sweeps through a real Client: against the fake (request counts) and a hostile listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import stamina
from aiohttp import web

import areplicate
from areplicate._core import sweep as core
from areplicate.testing import FakeReplicate
from tests.hostile.server import Hostile, json_response, prediction_body, problem, sequence
from tests.services.conftest import Gate

N = 40
# Quick polls (and so quick sweeps: their period follows the schedule).
QUICK = areplicate.PollSchedule(first=0.04, ratio=0.0, cap=0.1)
LIST = "GET /v1/predictions"
GET = "GET /v1/predictions/{id}"


@pytest.fixture
async def quick(base_url: str) -> AsyncIterator[areplicate.Client]:
    async with areplicate.Client(
        api_token="r8_test_token", base_url=base_url, rate_limits=None, poll=QUICK
    ) as client:
        yield client


async def until(condition: object, *, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - the state polled
            await asyncio.sleep(0.01)


async def started(client: areplicate.Client, n: int) -> list[areplicate.Prediction]:
    return [
        await client.predictions.create("acme/gated", {"text": f"t{i}"}, hold=False)
        for i in range(n)
    ]


async def test_many_waits_cost_list_pages_not_a_get_each(
    quick: areplicate.Client, fake: FakeReplicate, gate: Gate
) -> None:
    predictions = await started(quick, N)
    waits = [asyncio.create_task(quick.predictions.wait(p)) for p in predictions]
    # Ten sweeps while all N run: per-prediction polls would be ten GETs each by then.
    await until(lambda: fake.counts[LIST] >= 10)
    gets_while_running = fake.counts[GET]
    gate.release.set()
    async with asyncio.timeout(10):
        done = await asyncio.gather(*waits)
    assert [p.output for p in done] == [f"T{i}" for i in range(N)]
    # Polling alone, ten rounds would have been 10 * N GETs; the sweeps left a few. (On a loaded
    # machine a wait whose poll falls due while a slow sweep is still listing polls on its own:
    # 27 of 40 once in CI, hence a bound of N, still a tenth of what polling alone makes.)
    assert gets_while_running <= N
    # Then one GET each for the finish (the list items carry no logs), and no more.
    assert fake.counts[GET] <= N + 2 * core.MIN_WAITERS
    assert all(p.logs is not None for p in done)


async def test_cancelling_swept_waits_cancels_their_predictions(
    quick: areplicate.Client, fake: FakeReplicate
) -> None:
    predictions = await started(quick, N)
    waits = [asyncio.create_task(quick.predictions.wait(p)) for p in predictions]
    timed = asyncio.create_task(quick.predictions.wait(predictions[0], timeout=0.5))
    await until(lambda: fake.counts[LIST] >= 3)
    waits[1].cancel()
    with pytest.raises(areplicate.WaitTimeoutError):
        async with asyncio.timeout(10):
            await timed
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(10):
            await waits[1]
    statuses = {p["id"]: p["status"] for p in fake.predictions}
    assert statuses[predictions[0].id] == "canceled"
    assert statuses[predictions[1].id] == "canceled"
    assert sum(s == "canceled" for s in statuses.values()) == 2
    for task in waits:
        task.cancel()
    await asyncio.gather(*waits, return_exceptions=True)


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    async with Hostile() as server:
        yield server


@pytest.mark.parametrize("failure", ["5xx", "not-json", "looping-next"])
async def test_a_hostile_listing_neither_cancels_nor_holds_the_waits(
    hostile: Hostile, failure: str
) -> None:
    stamina.set_testing(True, attempts=2)
    ids = [f"p{i}" for i in range(core.MIN_WAITERS * 2)]

    async def looping(request: web.Request) -> web.StreamResponse:
        # Every page links back to the same cursor and brings nothing new.
        return await json_response(
            {"next": f"{hostile.url}/predictions?cursor=same", "previous": None, "results": []}
        )(request)

    async def not_json(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"<html>proxy error</html>", content_type="application/json")

    bad = {
        "5xx": problem(503, "Service Unavailable"),
        "not-json": not_json,
        "looping-next": looping,
    }[failure]
    hostile.on("GET", "/v1/predictions", bad)
    for pid in ids:
        # Running for a few polls, then finished: only their own polls can tell.
        hostile.on(
            "GET",
            f"/v1/predictions/{pid}",
            sequence(
                json_response(prediction_body(pid, "processing")),
                json_response(prediction_body(pid, "processing")),
                json_response(prediction_body(pid, "processing")),
                json_response(prediction_body(pid, "succeeded")),
            ),
        )
    async with areplicate.Client(
        api_token="r8_test_token", base_url=hostile.url, rate_limits=None, poll=QUICK
    ) as client:
        running = [await client.predictions.get(pid) for pid in ids]
        async with asyncio.timeout(20):
            done = await asyncio.gather(*(client.predictions.wait(p) for p in running))
    assert {p.status for p in done} == {"succeeded"}
    assert hostile.count("GET", "/v1/predictions") >= 1  # sweeps were tried
    assert not any(seen.path.endswith("/cancel") for seen in hostile.requests)


async def test_the_fakes_list_items_carry_no_logs_as_the_real_apis_do(
    client: areplicate.Client,
) -> None:
    made = await client.predictions.create("acme/echo", {"text": "hi"}, hold=True)
    listed = [p async for p in client.predictions.list()]
    assert [p.id for p in listed] == [made.id]
    assert listed[0].logs is None
    assert (await client.predictions.get(made.id)).logs is not None
