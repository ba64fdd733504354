"""A stream whose consumer stops early cancels the remote prediction (shielded), as wait() does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

import areplicate
from areplicate.testing import FakeReplicate

CANCEL = "POST /v1/predictions/{id}/cancel"


async def tokens(prompt: str = "") -> AsyncIterator[str]:
    for i in range(1000):
        yield f"t{i} "
        await asyncio.sleep(0.02)


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeReplicate, areplicate.Client]]:
    fake = FakeReplicate()
    fake.add_model("acme/chat", tokens)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        yield fake, client


async def until_status(fake: FakeReplicate, pid: str, status: str) -> None:
    with anyio.fail_after(5):
        while fake.prediction(pid)["status"] != status:  # noqa: ASYNC110 - the fake's state
            await asyncio.sleep(0.01)


async def test_breaking_out_after_two_events_cancels_the_prediction(
    served: tuple[FakeReplicate, areplicate.Client],
) -> None:
    fake, client = served
    prediction = await client.predictions.create("acme/chat", {"prompt": "hi"})
    seen = []
    async with contextlib.aclosing(client.predictions.stream(prediction)) as events:
        async for event in events:
            if event.event == "output":
                seen.append(event.data)
            if len(seen) == 2:
                break
    assert fake.counts[CANCEL] == 1
    await until_status(fake, prediction.id, "canceled")


async def test_a_cancelled_consumer_task_cancels_the_prediction(
    served: tuple[FakeReplicate, areplicate.Client],
) -> None:
    fake, client = served
    prediction = await client.predictions.create("acme/chat", {"prompt": "hi"})
    two = asyncio.Event()

    async def consume() -> None:
        n = 0
        async for event in client.predictions.stream(prediction):
            n += event.event == "output"
            if n == 2:
                two.set()

    task = asyncio.create_task(consume())
    with anyio.fail_after(5):
        await two.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until_status(fake, prediction.id, "canceled")


async def test_cancel_on_exit_false_leaves_it_running(
    served: tuple[FakeReplicate, areplicate.Client],
) -> None:
    fake, client = served
    prediction = await client.predictions.create("acme/chat", {"prompt": "hi"})
    stream = client.predictions.stream(prediction, cancel_on_exit=False)
    async with contextlib.aclosing(stream) as events:
        async for _ in events:
            break
    assert fake.counts[CANCEL] == 0
    assert fake.prediction(prediction.id)["status"] == "processing"
    await client.predictions.cancel(prediction)


async def test_a_stream_read_to_done_cancels_nothing(
    served: tuple[FakeReplicate, areplicate.Client],
) -> None:
    fake, client = served

    async def short(prompt: str = "") -> AsyncIterator[str]:
        for token in ("a", "b"):
            yield token

    fake.add_model("acme/short", short)
    prediction = await client.predictions.create("acme/short", {"prompt": "hi"})
    events = [e.event async for e in client.predictions.stream(prediction)]
    assert events[-1] == "done"
    assert fake.counts[CANCEL] == 0
