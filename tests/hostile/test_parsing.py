"""Bodies built to hurt a parser: quadratic HTML, JSON nested past the recursion limit, an event
stream without a single newline. Each must end in a clear areplicate error, fast, with bounded
memory, never a RecursionError or a blocked event loop."""

from __future__ import annotations

import json
import time

import anyio
import pytest
from aiohttp import web

import areplicate
from tests.hostile.server import Handler, Hostile, prediction_body, raw, sequence

# 4 MB of unclosed <title> tags: the old regexes needed seconds for 84 KB, hours for this.
HOSTILE_HTML = b"<html><head>" + b"<title>" * 600_000
DEEP_JSON = b'{"id": "p1", "status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


async def test_a_huge_html_error_page_is_a_quick_clear_error(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", "/v1/predictions/p1", raw(HOSTILE_HTML, 500, "text/html"))
    started = time.perf_counter()
    with anyio.fail_after(60), pytest.raises(areplicate.APIError) as info:
        await client.predictions.get("p1")
    assert time.perf_counter() - started < 20  # generous: all retries, 4 MB each
    assert info.value.status == 500
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize("status", [200, 500])
async def test_json_nested_past_the_recursion_limit_is_a_replicate_error(
    hostile: Hostile, client: areplicate.Client, status: int
) -> None:
    hostile.on("GET", "/v1/predictions/p1", raw(DEEP_JSON, status))
    with anyio.fail_after(60), pytest.raises(areplicate.ReplicateError) as info:
        await client.predictions.get("p1")
    assert not any(isinstance(e, RecursionError) for e in _chain(info.value))


async def test_a_deep_body_once_then_the_real_answer(
    hostile: Hostile, client: areplicate.Client
) -> None:
    # Whatever the retry policy for unreadable bodies, the deep one never escapes as RecursionError.
    good = raw(b'{"id": "p1", "status": "succeeded", "output": "ok"}')
    hostile.on("GET", "/v1/predictions/p1", sequence(raw(DEEP_JSON), good))
    outcome: list[object] = []
    with anyio.fail_after(60):
        try:
            outcome.append(await client.predictions.get("p1"))
        except areplicate.ReplicateError as exc:
            outcome.extend(_chain(exc))
    assert not any(isinstance(e, RecursionError) for e in outcome)


def _endless_line(total: int) -> Handler:
    """An event stream that sends ``total`` bytes of one ``data:`` line and never a newline."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            await response.write(b"data: ")
            for _ in range(total // len(chunk)):
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, as it should
        return response

    return handler


async def test_a_stream_without_newlines_is_refused_not_buffered(
    hostile: Hostile, client: areplicate.Client
) -> None:
    body = prediction_body("p1", "processing")
    body["urls"]["stream"] = f"{hostile.origin}/stream/p1"
    hostile.on("GET", "/v1/predictions/p1", raw(json.dumps(body).encode()))
    hostile.on("GET", "/stream/p1", _endless_line(48 * 1024 * 1024))
    prediction = await client.predictions.get("p1")
    with anyio.fail_after(60), pytest.raises(areplicate.UnexpectedResponseError, match="event"):
        async for _ in client.predictions.stream(prediction):
            pass
    assert hostile.count("GET", "/stream/p1") == 1  # broken, not worth reconnecting to
