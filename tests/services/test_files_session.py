"""Downloads go through the session module: Session.download (the client's pool, no token) and
download_unbound (a FileOutput without a client). No other package module opens HTTP sessions."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import areplicate
from areplicate._session import download_unbound

PACKAGE = Path(areplicate.__file__).parent


class Files:
    def __init__(self) -> None:
        self.auth: list[str | None] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/moved", self.moved)
        app.router.add_get("/v1/out.bin", self.out)
        return app

    async def moved(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization"))
        raise web.HTTPFound("/v1/out.bin")

    async def out(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization"))
        return web.Response(body=b"bytes")


@pytest.fixture
def files() -> Files:
    return Files()


@pytest.fixture
async def base_url(files: Files) -> AsyncIterator[str]:
    runner = web.AppRunner(files.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_session_download_never_sends_the_token(files: Files, base_url: str) -> None:
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        # Even on the API's own origin: download() is for file hosts; redirects are followed.
        async with c._session.download(f"{base_url}/moved") as resp:
            assert await resp.read() == b"bytes"
        with pytest.raises(areplicate.NotFoundError):
            async with c._session.download(f"{base_url}/missing"):
                pass
    assert files.auth == [None, None]


async def test_download_unbound_opens_and_closes_its_own_pool(files: Files, base_url: str) -> None:
    async with download_unbound(f"{base_url}/moved") as resp:
        assert await resp.read() == b"bytes"
    assert await areplicate.FileOutput(f"{base_url}/out.bin").read() == b"bytes"
    assert files.auth == [None, None, None]


def test_only_the_session_module_opens_http_sessions() -> None:
    opened = []
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue  # the fake server is a server
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("ClientSession"):
                opened.append(path.relative_to(PACKAGE).as_posix())
    assert set(opened) == {"_session.py"}
