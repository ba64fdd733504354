"""An abandoned create the API registers a little late is still reaped.

The reaper's window allows a prediction created up to ``LATE_GRACE`` (2 s) after the caller let
go (the API may still act on a request shortly after we dropped it), and it lists only once
that window has closed, so a prediction the API registers at 1 s is found and cancelled.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import anyio
import pytest
from aiohttp import web

import areplicate
from tests.hostile.server import Hostile, json_response, prediction_body

CREATE = "/v1/models/acme/m/predictions"


async def test_an_orphan_registered_one_second_late_is_reaped(
    hostile: Hostile, client: areplicate.Client
) -> None:
    # An id no other test makes: the clients of one token in this process share a ledger, and
    # one that had made "p1" would rightly keep the reaper off it.
    made: list[dict[str, object]] = []

    async def slow_create(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)  # the API acts on the request a second after it arrived
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        made.append(prediction_body("late-p1", "processing", input={"prompt": "x"}, created_at=now))
        return web.json_response(made[0], status=201)

    async def listing(request: web.Request) -> web.StreamResponse:
        return web.json_response({"results": made, "next": None, "previous": None})

    hostile.on("POST", CREATE, slow_create)
    hostile.on("GET", "/v1/predictions", listing)
    hostile.on(
        "POST",
        "/v1/predictions/late-p1/cancel",
        json_response(prediction_body("late-p1", "canceled")),
    )
    # Any earlier response gives the client the API's Date (the clock skew).
    hostile.on("GET", "/v1/account", json_response({"type": "user", "username": "u", "name": "u"}))
    await client.account.get()

    task = asyncio.create_task(client.predictions.create("acme/m", {"prompt": "x"}))
    with anyio.fail_after(5):
        while hostile.count("POST", CREATE) < 1:  # noqa: ASYNC110 - the create arrived
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with anyio.fail_after(30):
        while made == [] or client._session._cleanup:  # noqa: ASYNC110 - made, then clean-up over
            await asyncio.sleep(0.05)
    assert hostile.count("GET", "/v1/predictions") >= 1  # the reaper did look
    assert hostile.count("POST", "/v1/predictions/late-p1/cancel") == 1
