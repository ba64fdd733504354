"""Fan-outs against a hostile API: one item's bad luck stays that item's, and costs no one else.

A glitch on a poll never costs a prediction that succeeded; a 404 on one item's poll is that
item's error; only an answer that would fail every item (a 404 on a create: the model is unknown)
stops them all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import stamina
from aiohttp import web

import areplicate
from areplicate import PollSchedule, Status
from tests.hostile.server import (
    TOKEN,
    Hostile,
    bad_reads,
    json_response,
    prediction_body,
    problem,
    sequence,
)

CREATE = "/v1/models/acme/m/predictions"


@pytest.fixture
async def quick(hostile: Hostile) -> AsyncIterator[areplicate.Client]:
    """A client of the hostile server that polls every few milliseconds (retries' backoff zeroed,
    their count still applies)."""
    stamina.set_testing(True, attempts=4)
    async with areplicate.Client(
        api_token=TOKEN,
        base_url=hostile.url,
        rate_limits=None,
        request_timeout=5,
        poll=PollSchedule(first=0.01, ratio=0.0, cap=0.05),
    ) as c:
        yield c


async def create_p_n(request: web.Request) -> web.StreamResponse:
    """A create that makes prediction ``p<n>`` for input ``{"n": n}``."""
    n = json.loads(await request.read())["input"]["n"]
    return web.json_response(prediction_body(f"p{n}", "starting", input={"n": n}), status=201)


def cancels(hostile: Hostile) -> int:
    return sum(1 for r in hostile.requests if r.path.endswith("/cancel"))


def script_cancels(hostile: Hostile, count: int) -> None:
    for n in range(count):
        hostile.on(
            "POST",
            f"/v1/predictions/p{n}/cancel",
            json_response(prediction_body(f"p{n}", "canceled")),
        )


async def test_ten_predictions_with_glitchy_polls_all_succeed_and_none_is_cancelled(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    hostile.on("POST", CREATE, create_p_n)
    for n in range(10):
        hostile.on(
            "GET",
            f"/v1/predictions/p{n}",
            sequence(*bad_reads(f"p{n}"), json_response(prediction_body(f"p{n}", "succeeded"))),
        )
    script_cancels(hostile, 10)
    async with asyncio.timeout(30):
        results = await areplicate.gather_predictions(
            quick, "acme/m", [{"n": n} for n in range(10)], concurrency=10, hold=False
        )
    assert [r.status for r in results] == [Status.SUCCEEDED] * 10
    assert [r.id for r in results] == [f"p{n}" for n in range(10)]
    assert cancels(hostile) == 0


async def test_a_404_on_one_items_poll_is_that_items_error_only(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    """Item 3's prediction vanishes before any other has finished: the rest still run to the end."""
    hostile.on("POST", CREATE, create_p_n)
    gone = asyncio.Event()

    async def vanished(request: web.Request) -> web.StreamResponse:
        gone.set()
        return await problem(404, "Not found", "The requested resource could not be found.")(
            request
        )

    def finishes_after_the_404(pid: str) -> web.StreamResponse:
        status = "succeeded" if gone.is_set() else "processing"
        return web.json_response(prediction_body(pid, status))

    for n in range(10):
        pid = f"p{n}"
        if n == 3:
            hostile.on("GET", f"/v1/predictions/{pid}", vanished)
        else:

            async def poll(request: web.Request, pid: str = pid) -> web.StreamResponse:
                return finishes_after_the_404(pid)

            hostile.on("GET", f"/v1/predictions/{pid}", poll)
    script_cancels(hostile, 10)
    async with asyncio.timeout(30):
        results = await areplicate.gather_predictions(
            quick,
            "acme/m",
            [{"n": n} for n in range(10)],
            concurrency=10,
            hold=False,
            return_exceptions=True,
        )
    assert len(results) == 10
    assert isinstance(results[3], areplicate.NotFoundError)
    others = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, areplicate.Prediction) for r in others)
    assert [r.status for r in others if isinstance(r, areplicate.Prediction)] == [
        Status.SUCCEEDED
    ] * 9
    assert cancels(hostile) == 0


async def test_a_404_on_the_first_create_stops_everything_at_once(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    """An unknown model: every create would get the same answer, so even ``return_exceptions``
    does not make the fan-out try the other 9,999."""
    hostile.on(
        "POST", CREATE, problem(404, "Not found", "The requested resource could not be found.")
    )
    async with asyncio.timeout(30):
        with pytest.raises(areplicate.NotFoundError):
            await areplicate.gather_predictions(
                quick,
                "acme/m",
                ({"n": n} for n in range(10_000)),
                concurrency=4,
                return_exceptions=True,
            )
    assert hostile.count("POST", CREATE) <= 8


async def test_a_404_on_a_create_stops_everything_even_after_others_finished(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    """The model was deleted mid-way: the next creates would all fail too."""
    served = 0

    async def create(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        if served > 3:
            return await problem(404, "Not found")(request)
        return await create_p_n(request)

    hostile.on("POST", CREATE, create)
    for n in range(3):
        hostile.on("GET", f"/v1/predictions/p{n}", json_response(prediction_body(f"p{n}")))
    async with asyncio.timeout(30):
        with pytest.raises(areplicate.NotFoundError):
            await areplicate.gather_predictions(
                quick,
                "acme/m",
                ({"n": n} for n in range(10_000)),
                concurrency=1,
                hold=False,
                return_exceptions=True,
            )
    assert hostile.count("POST", CREATE) == 4
