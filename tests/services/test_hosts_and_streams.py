"""Where requests go (the token stays on the API host) and how streams survive dropped lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import areplicate
from areplicate.testing import FakeReplicate

from ._local import serve_app

TOKEN = "r8_secret_host_test_token"


@pytest.fixture
async def other_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A server on 127.0.0.2 (another host) that records every request it gets."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path_qs}")
        return web.json_response({"detail": "wrong host"}, status=418)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with serve_app(app, "127.0.0.2") as origin:
        yield origin, hits


async def test_proxy_prefix_keeps_every_follow_up_on_the_configured_host(
    other_host: tuple[str, list[str]],
) -> None:
    """Like CometAPI: a base URL with a path prefix whose responses link to another host."""
    elsewhere, hits = other_host
    fake = FakeReplicate(public_base_url=f"{elsewhere}/v1")

    async def words(text: str = "") -> AsyncIterator[str]:
        for word in text.split():
            yield word

    fake.add_model("acme/echo", lambda n=0: n)
    fake.add_model("acme/words", words)
    async with fake.serve(prefix="/replicate/v1") as base_url:
        assert base_url.endswith("/replicate/v1")
        fake.stream_base_url = base_url.replace("127.0.0.1", "localhost")
        async with areplicate.Client(TOKEN, base_url=base_url, rate_limits=None) as client:
            created = [await client.predictions.create("acme/echo", {"n": i}) for i in range(120)]
            assert created[0].urls.get is not None
            assert created[0].urls.get.startswith(elsewhere)  # the API's links name the other host
            done = await client.predictions.wait(created[0])
            assert done.status == "succeeded"
            await client.predictions.cancel(created[1])
            listed = [p.id async for p in client.predictions.list()]
            assert len(listed) == 120
            streamed = await client.predictions.create("acme/words", {"text": "a b c"})
            tokens = [
                e.data async for e in client.predictions.stream(streamed) if e.event == "output"
            ]
            assert tokens == ["a", "b", "c"]
    assert hits == []
    assert fake.counts["GET /v1/predictions"] == 2  # the next link was followed, on our host
    authorized = [r for r in fake.requests if "Authorization" in r.headers]
    stream_requests = [r for r in fake.requests if r.route == "GET /v1/streams/{id}"]
    assert stream_requests
    assert all("Authorization" not in r.headers for r in stream_requests)
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in authorized)


class FlakyStream:
    """A hand-written API + stream host whose stream drops mid-event, to test reconnection."""

    def __init__(self, *, honour_last_event_id: bool) -> None:
        self.honour = honour_last_event_id
        self.connections: list[dict[str, str]] = []
        self.tokens = [f"tok{i}" for i in range(6)]

    def event(self, i: int) -> bytes:
        return f"event: output\nid: 1690212292:{i}\ndata: {self.tokens[i]}\n\n".encode()

    async def prediction(self, request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        body: dict[str, Any] = {
            "id": "p1",
            "model": "acme/words",
            "version": "hidden",
            "input": {},
            "status": "processing",
            "created_at": "2024-01-01T00:00:00Z",
            "urls": {
                "get": f"{base}/v1/predictions/p1",
                "cancel": f"{base}/v1/predictions/p1/cancel",
                "stream": f"{base}/stream/p1",
            },
        }
        return web.json_response(body)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.connections.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if len(self.connections) == 1:
            await response.write(b": hi\n\n" + b"".join(self.event(i) for i in range(3)))
            await response.write(b"event: output\nid: 1690212292:3\nda")  # cut mid-event
            await asyncio.sleep(0)
            assert request.transport is not None
            request.transport.close()
            return response
        start = 0
        if self.honour and (last := request.headers.get("Last-Event-ID")):
            start = int(last.rpartition(":")[2]) + 1
        body = b"".join(self.event(i) for i in range(start, len(self.tokens)))
        await response.write(body + b"event: done\nid: 1690212292:99\ndata: {}\n\n")
        await response.write_eof()
        return response


@pytest.mark.parametrize("honour", [True, False], ids=["resumes", "replays"])
async def test_stream_survives_a_dropped_connection_without_loss_or_duplicates(
    honour: bool,
) -> None:
    server = FlakyStream(honour_last_event_id=honour)
    app = web.Application()
    app.router.add_get("/v1/predictions/p1", server.prediction)
    app.router.add_get("/stream/p1", server.stream)
    async with (
        serve_app(app) as origin,
        areplicate.Client(TOKEN, base_url=origin, rate_limits=None) as client,
    ):
        events = [e async for e in client.predictions.stream("p1")]
    assert [e.data for e in events if e.event == "output"] == server.tokens
    assert events[-1].event == "done"
    assert len(server.connections) == 2
    assert server.connections[1]["Last-Event-ID"] == "1690212292:2"
