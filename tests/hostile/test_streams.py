"""Streams against a hostile stream host: reconnects end when nothing new arrives, and a silent
stream is bounded by the client's own timeout."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

import areplicate
from tests.hostile.server import TOKEN, Hostile, json_response, prediction_body


def stream_route(hostile: Hostile, body: bytes, *, hang: bool = False) -> list[dict[str, str]]:
    """Serve p1 as streaming from ``/stream/p1``, whose every connection sends ``body`` and then
    closes (or, with ``hang``, sends nothing more and stays open).

    Returns the list of the connections' request headers, filled as they arrive."""
    connections: list[dict[str, str]] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        connections.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        if hang:
            await asyncio.Event().wait()  # the server's shutdown cancels it
        await response.write_eof()
        return response

    prediction = prediction_body("p1", "processing")
    prediction["urls"]["stream"] = f"{hostile.origin}/stream/p1"
    hostile.on("GET", "/v1/predictions/p1", json_response(prediction))
    hostile.on("GET", "/stream/p1", stream)
    return connections


async def collect(client: areplicate.Client, into: list[str]) -> None:
    async for event in client.predictions.stream("p1"):
        into.append(event.data)


@pytest.mark.parametrize(
    "body",
    [b"event: output\ndata: tok\n\n", b"event: output\nid: 1690212292:0\ndata: tok\n\n"],
    ids=["without-id", "same-id"],
)
async def test_a_stream_that_repeats_one_event_and_closes_gives_up_with_a_clear_error(
    hostile: Hostile, client: areplicate.Client, body: bytes
) -> None:
    connections = stream_route(hostile, body)
    got: list[str] = []
    async with asyncio.timeout(20):
        with pytest.raises(areplicate.ReplicateError, match="before its 'done' event"):
            await collect(client, got)
    assert got == ["tok"]  # delivered once, never again
    assert 2 <= len(connections) <= 10


async def test_a_silent_stream_is_bounded_by_the_clients_timeout(hostile: Hostile) -> None:
    connections = stream_route(hostile, b": hi\n\nevent: output\nid: 1:0\ndata: tok\n\n", hang=True)
    got: list[str] = []
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=0.3
    ) as client:
        async with asyncio.timeout(20):
            with pytest.raises(areplicate.APITimeoutError):
                await collect(client, got)
    assert got == ["tok"]
    assert 2 <= len(connections) <= 10
    assert connections[-1]["Last-Event-ID"] == "1:0"


async def test_a_stream_that_makes_progress_each_time_runs_to_its_done(
    hostile: Hostile, client: areplicate.Client
) -> None:
    """Each connection brings one new event and closes: that is progress, so it goes on."""
    served = 0

    async def stream(request: web.Request) -> web.StreamResponse:
        nonlocal served
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if served < 8:
            await response.write(f"event: output\nid: 1:{served}\ndata: t{served}\n\n".encode())
        else:
            await response.write(b"event: done\nid: 1:99\ndata: {}\n\n")
        served += 1
        await response.write_eof()
        return response

    stream_route(hostile, b"")
    hostile.on("GET", "/stream/p1", stream)
    got: list[str] = []
    async with asyncio.timeout(20):
        await collect(client, got)
    assert got == [f"t{i}" for i in range(8)] + ["{}"]
