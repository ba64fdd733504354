"""A server that misbehaves on purpose, for the failures ``areplicate.testing`` is too polite to play.

``areplicate.testing`` behaves like the real API; this one does what real HTTP services and the
proxies in front of them sometimes do: answer a create that happened with a body nobody can read,
fail one poll in twenty, trickle a body a byte at a time, cut a response off half-way, send a
``next`` link that never ends. Each test scripts the routes it needs::

    async with Hostile() as server:
        server.on("POST", "/v1/models/acme/m/predictions", created(body=b"<html>oops"))
        server.on("GET", "/v1/predictions/p1", sequence(status_500(), prediction_json("p1")))
        client = areplicate.Client(api_token=TOKEN, base_url=server.url)

Routes are matched on method and exact path (no patterns: tests name what they expect). A route
nobody scripted answers 404 problem+json. ``server.hits`` counts requests per ``"METHOD /path"`` and
``server.requests`` keeps every request's method, path, query and headers, so a test can assert on
what the client sent (and that the token went nowhere else). It imports nothing from areplicate:
the bodies it builds are its own, so a client bug cannot hide behind the same bug here.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

__all__ = [
    "TOKEN",
    "Handler",
    "Hostile",
    "Seen",
    "created",
    "drop",
    "json_response",
    "prediction_body",
    "problem",
    "raw",
    "sequence",
    "trickle",
    "truncated",
]

#: The token tests give the client; a test that looks for leaks searches for this string.
TOKEN = "r8_hostile_SECRET_token_0123456789"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    at: float


def prediction_body(
    pid: str,
    status: str = "succeeded",
    *,
    model: str = "acme/m",
    input: Mapping[str, Any] | None = None,
    output: Any = "ok",
    created_at: str = "2026-12-01T00:00:00.000000Z",
    **extra: Any,
) -> dict[str, Any]:
    """A prediction as the API describes it (only the fields tests care about, plus ``extra``)."""
    terminal = status in ("succeeded", "failed", "canceled", "aborted")
    body: dict[str, Any] = {
        "id": pid,
        "model": model,
        "version": "hidden",
        "input": dict(input or {}),
        "output": output if status == "succeeded" else None,
        "logs": "",
        "error": None,
        "status": status,
        "created_at": created_at,
        "started_at": created_at if status != "starting" else None,
        "completed_at": created_at if terminal else None,
        "urls": {
            "get": f"https://api.replicate.com/v1/predictions/{pid}",
            "cancel": f"https://api.replicate.com/v1/predictions/{pid}/cancel",
        },
        "metrics": {},
    }
    body.update(extra)
    return body


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Handler:
    """Answer with ``body`` as JSON."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return handler


def raw(
    body: bytes,
    status: int = 200,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Handler:
    """Answer with exactly these bytes (which need not be what ``content_type`` claims)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        return web.Response(body=body, status=status, headers=all_headers)

    return handler


def created(body: bytes | Any, status: int = 201) -> Handler:
    """A create's answer: the server did create something, then said ``body`` (bytes sent as-is)."""
    if isinstance(body, bytes):
        return raw(body, status=status)
    return json_response(body, status=status)


def problem(status: int, title: str, detail: str = "", **headers: str) -> Handler:
    """A problem+json error answer."""
    body = json.dumps({"title": title, "detail": detail, "status": status}).encode()
    return raw(body, status=status, content_type="application/problem+json", headers=headers)


def trickle(body: bytes, *, every: float = 1.0, chunk: int = 1, status: int = 200) -> Handler:
    """Send ``body`` ``chunk`` bytes at a time, one chunk per ``every`` seconds (a slow-loris server)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), chunk):
            await response.write(body[start : start + chunk])
            await asyncio.sleep(every)
        return response

    return handler


def truncated(body: bytes, *, keep: int, status: int = 200) -> Handler:
    """Announce ``len(body)`` bytes, send the first ``keep`` and close the connection."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:keep])
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


def drop() -> Handler:
    """Read the request, then close the connection without a word."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        return web.Response()  # never reaches the client

    return handler


def sequence(*handlers: Handler) -> Handler:
    """The first request gets the first handler's answer, the next the second, and so on; once they
    run out, the last handler answers every further request."""
    if not handlers:
        raise ValueError("sequence() needs at least one handler")
    queue = collections.deque(handlers)

    async def handler(request: web.Request) -> web.StreamResponse:
        current = queue.popleft() if len(queue) > 1 else queue[0]
        return await current(request)

    return handler


class Hostile:
    """The scripted server; use as ``async with Hostile() as server`` (or the ``hostile`` fixture)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._routes: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self.hits: collections.Counter[str] = collections.Counter()
        self.requests: list[Seen] = []
        self.origin = ""

    @property
    def url(self) -> str:
        """The base URL to give the client (``…/v1``)."""
        return f"{self.origin}/v1"

    def on(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` (exact path, e.g. ``/v1/predictions/p1``) with ``handler``."""
        self._routes[(method.upper(), path)] = handler

    def count(self, method: str, path: str) -> int:
        """How many ``method path`` requests arrived."""
        return self.hits[f"{method.upper()} {path}"]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        key = (request.method, request.path)
        self.hits[f"{request.method} {request.path}"] += 1
        self.requests.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                time.monotonic(),
            )
        )
        handler = self._routes.get(key)
        if handler is None:
            return await problem(
                404, "Not found", f"nothing scripted for {request.method} {request.path}"
            )(request)
        return await handler(request)

    async def __aenter__(self) -> Hostile:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.origin = f"http://{self._host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def serve() -> AsyncIterator[Hostile]:
    """The body of the ``hostile`` fixture (kept here so other suites can reuse it)."""
    async with Hostile() as server:
        yield server


def bad_reads(pid: str, *, times: int = 5) -> list[Handler]:
    """``times`` each of a 500, a 200 that is not JSON and a 200 cut off half-way, in that order:
    what a flaky proxy answers a read of ``pid`` (more of each than a client's own retries absorb).
    Put them in a :func:`sequence` before the answer that finally gets through."""
    body = json.dumps(prediction_body(pid, "processing")).encode()
    return [
        *(problem(500, "Internal Server Error") for _ in range(times)),
        *(raw(b"<html><body>upstream hiccup</body></html>") for _ in range(times)),
        *(truncated(body, keep=len(body) // 2) for _ in range(times)),
    ]
