"""Waiting through bad answers: a poll that fails never ends the wait or cancels paid work.

Only a terminal status, a definitive error (401, 403, 404, ...), the wait's own timeout or the
caller's cancellation ends a wait; only the last two cancel the remote prediction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import stamina
from aiohttp import web

import areplicate
from areplicate import PollSchedule, Status
from tests.hostile.server import (
    TOKEN,
    Handler,
    Hostile,
    bad_reads,
    created,
    json_response,
    prediction_body,
    problem,
    sequence,
)

GET = "/v1/predictions/p1"
CANCEL = "/v1/predictions/p1/cancel"
# Quick polls, so a test that sits through a dozen bad answers stays fast.
QUICK = PollSchedule(first=0.01, ratio=0.0, cap=0.05)


@pytest.fixture
async def quick(hostile: Hostile) -> AsyncIterator[areplicate.Client]:
    """A client of the hostile server that polls every few milliseconds (retries' backoff zeroed,
    their count still applies)."""
    stamina.set_testing(True, attempts=4)
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=5, poll=QUICK
    ) as c:
        yield c


def counted(handler: Handler, reached: asyncio.Event, after: int) -> Handler:
    """``handler``, setting ``reached`` once ``after`` requests have been answered."""
    seen = 0

    async def wrapper(request: web.Request) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        if seen >= after:
            reached.set()
        return await handler(request)

    return wrapper


def cancel_route(hostile: Hostile, pid: str = "p1") -> None:
    hostile.on(
        "POST", f"/v1/predictions/{pid}/cancel", json_response(prediction_body(pid, "canceled"))
    )


async def test_bad_answers_to_polls_do_not_end_or_cancel_the_wait(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    hostile.on(
        "GET",
        GET,
        sequence(*bad_reads("p1"), json_response(prediction_body("p1", "succeeded"))),
    )
    cancel_route(hostile)
    async with asyncio.timeout(20):
        done = await quick.predictions.wait("p1")
    assert done.status == Status.SUCCEEDED
    assert done.output == "ok"
    assert hostile.count("GET", GET) >= 10  # the answers after a failure were really asked for
    assert hostile.count("POST", CANCEL) == 0


async def test_run_survives_bad_polls_after_its_create(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    hostile.on("POST", "/v1/models/acme/m/predictions", created(prediction_body("p1", "starting")))
    hostile.on(
        "GET",
        GET,
        sequence(*bad_reads("p1"), json_response(prediction_body("p1", "succeeded"))),
    )
    cancel_route(hostile)
    async with asyncio.timeout(20):
        output = await quick.predictions.run("acme/m", {}, hold=False, timeout=15)
    assert output == "ok"
    assert hostile.count("POST", CANCEL) == 0


async def test_rate_limited_polls_slow_the_wait_down_without_ending_it(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    throttled = problem(429, "Too Many Requests", "Request was throttled.", **{"Retry-After": "0"})
    hostile.on(
        "GET",
        GET,
        sequence(*[throttled] * 12, json_response(prediction_body("p1", "succeeded"))),
    )
    cancel_route(hostile)
    async with asyncio.timeout(20):
        done = await quick.predictions.wait("p1")
    assert done.status == Status.SUCCEEDED
    assert hostile.count("POST", CANCEL) == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, areplicate.AuthenticationError),
        (403, areplicate.APIError),
        (404, areplicate.NotFoundError),
    ],
)
async def test_a_definitive_answer_ends_the_wait_without_cancelling(
    hostile: Hostile, quick: areplicate.Client, status: int, error: type[Exception]
) -> None:
    hostile.on(
        "GET",
        GET,
        sequence(json_response(prediction_body("p1", "processing")), problem(status, "No")),
    )
    cancel_route(hostile)
    async with asyncio.timeout(10):
        with pytest.raises(error) as caught:
            await quick.predictions.wait("p1")
    assert getattr(caught.value, "status", None) == status
    assert hostile.count("POST", CANCEL) == 0


async def test_the_waits_own_timeout_still_cancels_during_an_outage(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    hostile.on(
        "GET",
        GET,
        sequence(json_response(prediction_body("p1", "processing")), problem(500, "Still broken")),
    )
    cancel_route(hostile)
    async with asyncio.timeout(10):
        with pytest.raises(areplicate.WaitTimeoutError) as caught:
            await quick.predictions.wait("p1", timeout=0.5)
    assert caught.value.prediction.status == Status.PROCESSING  # the last state actually read
    assert hostile.count("POST", CANCEL) == 1


async def test_the_callers_cancellation_still_cancels_during_an_outage(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    reached = asyncio.Event()
    hostile.on("GET", GET, counted(problem(500, "Still broken"), reached, after=3))
    cancel_route(hostile)
    async with asyncio.timeout(10):
        waiter = asyncio.create_task(quick.predictions.wait("p1"))
        await reached.wait()
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert hostile.count("POST", CANCEL) == 1


async def test_training_wait_keeps_polling_through_bad_answers(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    path = "/v1/trainings/t1"
    hostile.on(
        "GET", path, sequence(*bad_reads("t1"), json_response(prediction_body("t1", "succeeded")))
    )
    hostile.on("POST", f"{path}/cancel", json_response(prediction_body("t1", "canceled")))
    async with asyncio.timeout(20):
        done = await quick.trainings.wait("t1")
    assert done.status == Status.SUCCEEDED
    assert hostile.count("POST", f"{path}/cancel") == 0


async def test_training_wait_definitive_error_does_not_cancel(
    hostile: Hostile, quick: areplicate.Client
) -> None:
    path = "/v1/trainings/t1"
    hostile.on("GET", path, problem(401, "Unauthenticated"))
    hostile.on("POST", f"{path}/cancel", json_response(prediction_body("t1", "canceled")))
    async with asyncio.timeout(10):
        with pytest.raises(areplicate.AuthenticationError):
            await quick.trainings.wait("t1")
    assert hostile.count("POST", f"{path}/cancel") == 0


async def test_training_clean_up_cancel_skips_the_request_budget(hostile: Hostile) -> None:
    """The cancel after a timed-out wait stops work: it must not queue behind the budget."""
    path = "/v1/trainings/t1"
    hostile.on("GET", path, json_response(prediction_body("t1", "processing")))
    hostile.on("POST", f"{path}/cancel", json_response(prediction_body("t1", "canceled")))
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, request_timeout=5, poll=QUICK
    ) as client:
        running = await client.trainings.get("t1")
        client._session.budget.pause(3600)  # every paced request now waits an hour
        async with asyncio.timeout(5):
            with pytest.raises(areplicate.WaitTimeoutError):
                await client.trainings.wait(running, timeout=0.2)
        assert hostile.count("POST", f"{path}/cancel") == 1
