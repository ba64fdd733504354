"""Webhook-driven waits end to end: the fake delivers signed webhooks to a route that feeds a
Receiver, and waits end at the delivery instead of polling.

The route here is a small aiohttp app on 127.0.0.1 (the FastAPI version is in
tests/examples/test_fastapi_app.py); the fake signs with its own secret, which the client fetches
once from ``GET /webhooks/default/secret`` like it would from Replicate.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web

import areplicate
from areplicate.testing import FakeReplicate
from areplicate.webhooks import Receiver
from tests.services._local import serve_app

GET = "GET /v1/predictions/{id}"


async def three_seconds(prompt: str = "") -> str:
    await asyncio.sleep(3)
    return prompt.upper()


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()
    fake.add_model("acme/slow", three_seconds)
    async with fake.serve() as url:
        yield fake, url


class Route:
    """The app's webhook route: feeds deliveries to the receiver, can lose some on purpose."""

    def __init__(self, drop_every: int = 0) -> None:
        self.receiver: Receiver | None = None
        self.dropped: set[str] = set()
        self._drop_every = drop_every
        self._seen = 0

    async def handle(self, request: web.Request) -> web.Response:
        assert self.receiver is not None
        body = await request.read()
        pid = areplicate.webhooks.parse(body).id
        self._seen += 1
        if self._drop_every and self._seen % self._drop_every == 0:
            self.dropped.add(pid)  # answered 200, never handled: a delivery lost on the way
            return web.Response(text="ok")
        reply = await self.receiver.handle(request.headers, body)
        return web.Response(status=reply.status, text=reply.body)


async def run_fan_out(
    fake: tuple[FakeReplicate, str],
    route: Route,
    n: int,
    fallback: areplicate.PollSchedule | None = None,
) -> dict[str, float]:
    """``n`` predictions through a receiver; returns when each one's wait ended (by id)."""
    app = web.Application()
    app.router.add_post("/hooks", route.handle)
    ended: dict[str, float] = {}
    async with serve_app(app) as origin:
        options = {} if fallback is None else {"fallback": fallback}
        route.receiver = receiver = Receiver(f"{origin}/hooks", **options)
        async with areplicate.Client(
            "r8_test", base_url=fake[1], rate_limits=None, webhooks=receiver
        ) as client:
            inputs = [{"prompt": f"p{i}"} for i in range(n)]
            with anyio.fail_after(90):
                async with areplicate.as_completed(
                    client, "acme/slow", inputs, concurrency=n, hold=False
                ) as results:
                    async for done in results:
                        assert done.prediction is not None, done.error
                        assert done.prediction.status == "succeeded"
                        assert done.prediction.output == done.input["prompt"].upper()
                        ended[done.prediction.id] = time.monotonic()
    return ended


async def test_200_waits_end_at_their_deliveries_without_polling(
    fake: tuple[FakeReplicate, str],
) -> None:
    route = Route()
    ended = await run_fan_out(fake, route, 200)
    server = fake[0]
    assert len(ended) == 200
    # No poll at all: nothing but its delivery can have ended a wait. (No bound on the lag: on a
    # loaded machine a wall-clock bound failed at 1.3 s while proving nothing the count does not.)
    assert server.counts[GET] == 0
    assert server.counts["GET /v1/webhooks/default/secret"] == 1


async def test_lost_deliveries_cost_one_fallback_poll_never_a_hang(
    fake: tuple[FakeReplicate, str],
) -> None:
    route = Route(drop_every=10)
    # The fallback, made quick: its first poll comes 2 s after the 3 s model has ended.
    quick = areplicate.PollSchedule(first=5.0, ratio=0.0, cap=5.0)
    started = time.monotonic()
    ended = await run_fan_out(fake, route, 50, fallback=quick)
    assert len(ended) == 50
    assert len(route.dropped) == 5
    polls = collections.Counter(r.path for r in fake[0].requests if r.method == "GET")
    # Only the predictions whose delivery was lost were polled, once each, at the fallback's time.
    polled = {path.rsplit("/", 1)[-1] for path in polls if "/predictions/" in path}
    assert polled == route.dropped
    assert all(polls[f"/v1/predictions/{pid}"] == 1 for pid in route.dropped)
    assert max(ended[pid] for pid in route.dropped) - started < 5.0 + 3.0
