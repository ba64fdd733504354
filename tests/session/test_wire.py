"""The session against a real socket on 127.0.0.1: what aiohttp actually sends, and real timeouts
and refusals classified the way the retry rules need."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import stamina
from aiohttp import web

import areplicate
from areplicate import APIConnectionError, APITimeoutError, Client

TOKEN = "r8_WireT0kenWireT0kenWireT0kenWireT0ken1"


class Server:
    """A tiny HTTP server: records each request's headers; ``/hang`` never answers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.never = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, dict(request.headers)))
        if request.path.endswith("/hang"):
            await self.never.wait()
        return web.json_response({"id": "p1", "status": "starting"}, status=201)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield state, f"http://{host}:{port}"
    finally:
        state.never.set()
        await runner.cleanup()


async def test_headers_on_the_wire(server: tuple[Server, str]) -> None:
    state, url = server
    async with Client(api_token=TOKEN, base_url=url, rate_limits=None, environ={}) as client:
        response = await client._session.request(
            "POST", "predictions", json_body={"input": {}}, create=True
        )
    assert response.json() == {"id": "p1", "status": "starting"}
    ((method, path, headers),) = state.seen
    assert (method, path) == ("POST", "/v1/predictions")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"] == f"areplicate/{areplicate.__version__}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"


async def test_a_create_that_times_out_after_sending_is_not_sent_again(
    server: tuple[Server, str],
) -> None:
    state, url = server
    async with Client(
        api_token=TOKEN,
        base_url=url,
        rate_limits=None,
        request_timeout=0.1,
        max_retries=5,
        environ={},
    ) as client:
        with pytest.raises(APITimeoutError) as info:
            await client._session.request("POST", "predictions/hang", json_body={}, create=True)
        assert info.value.sent is True
        assert len(state.seen) == 1
        # a read is retried after the same failure
        with pytest.raises(APITimeoutError), stamina.set_testing(True, attempts=3, cap=True):
            await client._session.request("GET", "predictions/hang")
    assert len(state.seen) == 1 + 3


async def test_connection_refused_is_not_sent() -> None:
    with socket.socket() as probe:  # a port nothing listens on (closed right away)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Client(
        api_token=TOKEN,
        base_url=f"http://127.0.0.1:{port}",
        rate_limits=None,
        max_retries=0,
        environ={},
    ) as client:
        with pytest.raises(APIConnectionError, match="could not connect") as info:
            await client._session.request("POST", "predictions", json_body={}, create=True)
    assert info.value.sent is False
    assert not isinstance(info.value, APITimeoutError)
    assert TOKEN not in str(info.value)
