"""What reaches the server: a bodiless POST carries no body and no Content-Type (as the API documents
cancel, and as the official client sends it), and ``predictions.list(source=...)`` sends the API's
``source`` filter. A small aiohttp server records each request as it arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import pytest
from aiohttp import web

import areplicate

TOKEN = "r8_wire_test_token"


@attrs.define
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


def _prediction(pid: str, status: str = "canceled") -> dict[str, Any]:
    return {
        "id": pid,
        "model": "acme/hello",
        "version": "v1",
        "input": {},
        "output": None,
        "data_removed": False,
        "error": None,
        "status": status,
        "created_at": "2025-01-01T00:00:00Z",
        "urls": {"get": "g", "cancel": "c", "web": "w"},
    }


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[Seen]]]:
    seen: list[Seen] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        pid = request.match_info.get("pid", "p1")
        if request.path == "/v1/predictions":
            return web.json_response({"results": [_prediction("p1")], "next": None})
        return web.json_response(_prediction(pid))

    app = web.Application()
    app.router.add_post("/v1/predictions/{pid}/cancel", record)
    app.router.add_post("/v1/trainings/{pid}/cancel", record)
    app.router.add_get("/v1/predictions", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1", seen
    finally:
        await runner.cleanup()


def _client(base_url: str) -> areplicate.Client:
    return areplicate.Client(
        api_token=TOKEN, base_url=base_url, rate_limits=None, request_timeout=5
    )


async def test_cancel_sends_no_body_and_no_content_type(server: tuple[str, list[Seen]]) -> None:
    base_url, seen = server
    with anyio.fail_after(20):
        async with _client(base_url) as client:
            await client.predictions.cancel("p1")
            await client.trainings.cancel("t1")
    assert [s.path for s in seen] == ["/v1/predictions/p1/cancel", "/v1/trainings/t1/cancel"]
    for request in seen:
        assert request.body == b""
        assert request.headers.get("Content-Type") is None
        assert request.headers.get("Content-Length", "0") == "0"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_list_filters_by_source(server: tuple[str, list[Seen]]) -> None:
    base_url, seen = server
    with anyio.fail_after(20):
        async with _client(base_url) as client:
            found = [p.id async for p in client.predictions.list(source="web")]
            pages = [page async for page in client.predictions.pages(source="web")]
            everything = [p.id async for p in client.predictions.list()]
    assert found == everything == ["p1"]
    assert len(pages) == 1
    assert [s.query.get("source") for s in seen] == ["web", "web", None]


async def test_an_empty_source_is_refused(server: tuple[str, list[Seen]]) -> None:
    base_url, seen = server
    with anyio.fail_after(20):
        async with _client(base_url) as client:
            with pytest.raises(ValueError, match="source"):
                [p async for p in client.predictions.list(source="")]
    assert seen == []
