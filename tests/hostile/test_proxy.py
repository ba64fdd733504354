"""Proxies: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` are honoured by default and ignored with
``Client(trust_env=False)``; the token goes through the proxy only on requests to the API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web

import areplicate
from tests.hostile.server import TOKEN, Hostile, json_response, prediction_body

ONE = "/v1/predictions/p1"
_HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "host", "keep-alive"}


@attrs.frozen
class Forwarded:
    method: str
    url: str
    authorization: str | None
    proxy_authorization: str | None


class Proxy:
    """A forward proxy for http:// targets on 127.0.0.1 that records each request it forwards."""

    def __init__(self) -> None:
        self.seen: list[Forwarded] = []
        self.url = ""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = str(request.url)
        self.seen.append(
            Forwarded(
                request.method,
                target,
                request.headers.get("Authorization"),
                request.headers.get("Proxy-Authorization"),
            )
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method,
                target,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as resp,
        ):
            body = await resp.read()
            keep = {k: v for k, v in resp.headers.items() if k.lower() == "content-type"}
            return web.Response(status=resp.status, body=body, headers=keep)

    async def __aenter__(self) -> Proxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Proxy]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with Proxy() as server:
        yield server


async def _get_and_download(hostile: Hostile, elsewhere: Hostile, **options: bool) -> None:
    hostile.on("GET", ONE, json_response(prediction_body("p1", output=f"{elsewhere.origin}/o.txt")))
    elsewhere.on("GET", "/o.txt", json_response("file"))
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, **options
    ) as client:
        with anyio.fail_after(10):
            prediction = await client.predictions.get("p1")
            assert prediction.id == "p1"
            async with client._session.stream(f"{elsewhere.origin}/o.txt") as resp:
                assert await resp.read() == b'"file"'
            async with client._session.download(f"{elsewhere.origin}/o.txt") as resp:
                assert await resp.read() == b'"file"'


async def test_http_proxy_carries_every_request_and_the_token_only_to_the_api(
    hostile: Hostile, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with Hostile() as elsewhere:  # another origin: a file CDN
        await _get_and_download(hostile, elsewhere)
        assert [(f.method, f.url) for f in proxy.seen] == [
            ("GET", f"{hostile.origin}{ONE}"),
            ("GET", f"{elsewhere.origin}/o.txt"),
            ("GET", f"{elsewhere.origin}/o.txt"),
        ]
        api, *cdn = proxy.seen
        assert api.authorization == f"Bearer {TOKEN}"
        for forwarded in cdn:
            assert forwarded.authorization is None
            assert TOKEN not in repr(forwarded)
        assert all(seen.headers.get("Authorization") is None for seen in elsewhere.requests)


async def test_no_proxy_names_hosts_that_go_direct(
    hostile: Hostile, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with Hostile(host="localhost") as elsewhere:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        await _get_and_download(hostile, elsewhere)
    assert [f.url for f in proxy.seen] == [f"{elsewhere.origin}/o.txt"] * 2
    assert hostile.count("GET", ONE) == 1


async def test_trust_env_false_ignores_the_environment(
    hostile: Hostile, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with Hostile() as elsewhere:
        await _get_and_download(hostile, elsewhere, trust_env=False)
    assert proxy.seen == []
    assert hostile.count("GET", ONE) == 1


async def test_proxy_credentials_go_to_the_proxy_alone(
    hostile: Hostile, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_proxy = proxy.url.replace("http://", "http://me:s3cret@")
    monkeypatch.setenv("HTTP_PROXY", user_proxy)
    async with Hostile() as elsewhere:
        await _get_and_download(hostile, elsewhere)
    assert {f.proxy_authorization for f in proxy.seen} == {
        "Basic " + base64.b64encode(b"me:s3cret").decode()
    }
    assert all("Proxy-Authorization" not in seen.headers for seen in hostile.requests)
