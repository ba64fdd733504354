"""SSE on ``urls.stream`` (docs/api-notes.md#server-sent-events): every event has ``event``, ``id``
and ``data``, the stream ends with ``done``, and ``Last-Event-ID`` resumes without duplicates."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from areplicate.testing import FakeReplicate, log

EVENT = re.compile(
    r"event: (?P<event>[a-z]+)\nid: (?P<id>\d+:\d+)\n(?P<data>(?:data: .*\n|data:\n)+)"
)


def parse(text: str) -> list[tuple[str, str, str]]:
    """(event, id, data) for each block; fails if a block lacks a field or the blank line."""
    blocks = text.split("\n\n")
    assert blocks[-1] == "", "the stream ends with a blank line"
    events = []
    for block in blocks[:-1]:
        m = EVENT.fullmatch(block + "\n")
        assert m is not None, f"malformed event block {block!r}"
        data = "\n".join(line[6:] for line in m["data"].splitlines())
        events.append((m["event"], m["id"], data))
    return events


async def create(http: Any, base_url: str, model: str, value: dict[str, Any]) -> dict[str, Any]:
    reply = await http.post(f"{base_url}/models/{model}/predictions", json={"input": value})
    assert reply.status == 201
    return reply.json  # type: ignore[no-any-return]


async def test_a_whole_stream(fake: FakeReplicate, base_url: str, http: Any) -> None:
    async def chat(prompt: str) -> AsyncIterator[str]:
        log("thinking")
        yield "Hello"
        yield " world\nand more"

    fake.add_model("acme/chat", chat)
    prediction = await create(http, base_url, "acme/chat", {"prompt": "hi"})
    reply = await http.get(
        prediction["urls"]["stream"], token=None, headers={"Accept": "text/event-stream"}
    )
    assert reply.status == 200
    assert reply.content_type == "text/event-stream"
    assert reply.headers["Cache-Control"] == "no-store"
    events = parse(reply.body.decode())
    assert [(e, d) for e, _, d in events] == [
        ("logs", "thinking"),
        ("output", "Hello"),
        ("output", " world\nand more"),
        ("done", "{}"),
    ]
    assert "data:  world\ndata: and more\n" in reply.body.decode()
    stamps = {i.split(":")[0] for _, i, _ in events}
    assert len(stamps) == 1
    assert [int(i.split(":")[1]) for _, i, _ in events] == [0, 1, 2, 3]
    assert fake.prediction(prediction["id"])["output"] == ["Hello", " world\nand more"]
    assert fake.counts["GET /v1/streams/{id}"] == 1


async def test_failure_sends_error_then_done(fake: FakeReplicate, base_url: str, http: Any) -> None:
    async def broken() -> AsyncIterator[str]:
        yield "partial"
        raise RuntimeError("out of tokens")

    fake.add_model("acme/broken", broken)
    prediction = await create(http, base_url, "acme/broken", {})
    reply = await http.get(prediction["urls"]["stream"], headers={"Accept": "text/event-stream"})
    events = [(e, d) for e, _, d in parse(reply.body.decode())]
    assert events == [
        ("output", "partial"),
        ("error", '{"detail": "out of tokens"}'),
        ("done", '{"reason": "error"}'),
    ]


async def test_cancel_ends_the_stream(
    fake: FakeReplicate, base_url: str, http: Any, gate: Any
) -> None:
    async def slow() -> AsyncIterator[str]:
        yield "first"
        await gate.hold()
        yield "never"

    fake.add_model("acme/slow", slow)
    prediction = await create(http, base_url, "acme/slow", {})
    reading = asyncio.create_task(
        http.get(prediction["urls"]["stream"], headers={"Accept": "text/event-stream"})
    )
    await gate.started.wait()
    await http.post(prediction["urls"]["cancel"])
    events = [(e, d) for e, _, d in parse((await reading).body.decode())]
    assert events == [("output", "first"), ("done", '{"reason": "canceled"}')]


async def test_resume_with_last_event_id(fake: FakeReplicate, base_url: str, gate: Any) -> None:
    async def words() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        await gate.hold()
        yield "c"
        yield "d"

    fake.add_model("acme/words", words)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base_url}/models/acme/words/predictions",
            json={"input": {}},
            headers={"Authorization": "Bearer r8_x"},
        ) as response:
            stream_url = (await response.json())["urls"]["stream"]
        headers = {"Accept": "text/event-stream"}
        first: list[tuple[str, str, str]] = []
        async with session.get(stream_url, headers=headers) as response:
            while len(first) < 2:
                block = await response.content.readuntil(b"\n\n")
                first += parse(block.decode())
        assert [d for _, _, d in first] == ["a", "b"]
        gate.release.set()
        await fake.wait_idle()
        last_id = first[-1][1]
        async with session.get(
            stream_url, headers={**headers, "Last-Event-ID": last_id}
        ) as response:
            rest = parse((await response.read()).decode())
    assert [(e, d) for e, _, d in rest] == [("output", "c"), ("output", "d"), ("done", "{}")]
    ids = [i for _, i, _ in first + rest]
    assert len(set(ids)) == len(ids) == 5


async def test_a_finished_stream_replays_and_a_resumed_finished_one_is_empty(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    async def once() -> AsyncIterator[str]:
        yield "only"

    fake.add_model("acme/once", once)
    reply = await http.post(
        f"{base_url}/models/acme/once/predictions", json={"input": {}}, headers={"Prefer": "wait"}
    )
    url = reply.json["urls"]["stream"]
    events = parse((await http.get(url)).body.decode())
    assert [e for e, _, _ in events] == ["output", "done"]
    after_done = await http.get(url, headers={"Last-Event-ID": events[-1][1]})
    assert after_done.body == b""


async def test_non_streaming_models_have_no_stream(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    async def plain() -> str:
        return "x"

    fake.add_model("acme/plain", plain)
    prediction = await create(http, base_url, "acme/plain", {})
    assert "stream" not in prediction["urls"]
    reply = await http.get(f"{base_url}/streams/{prediction['id']}")
    assert reply.status == 404
