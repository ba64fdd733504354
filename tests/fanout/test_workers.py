"""A fan-out runs its inputs on a pool of workers, one per slot: what that must not change."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import areplicate
from areplicate.testing import FakeReplicate

from ._tasks import our_tasks

SEEN: contextvars.ContextVar[int | None] = contextvars.ContextVar("SEEN", default=None)


async def slow(n: int = 0) -> int:
    """A model that runs for longer than any test waits."""
    await asyncio.sleep(30)
    return n


async def until_created(fake: FakeReplicate, n: int) -> None:
    """Return once the fake holds ``n`` predictions (the caller's deadline bounds the wait)."""
    while len(fake.predictions) < n:  # noqa: ASYNC110 - polls the fake, which has no event
        await asyncio.sleep(0.01)


async def test_a_step_sees_the_callers_context_not_the_previous_items() -> None:
    """One slot, so one worker runs every item: a variable an item's step sets stays that item's."""
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda n=0: n)
    seen: list[int | None] = []

    async def step(client: areplicate.Client, n: int) -> int:
        seen.append(SEEN.get())
        SEEN.set(n)
        prediction = await client.run("acme/echo", {"n": n})
        assert isinstance(prediction, int)
        return prediction

    async with fake.serve() as url, areplicate.Client("r8_test", base_url=url) as client:
        token = SEEN.set(-1)
        try:
            results = await areplicate.gather_predictions(client, step, range(4), concurrency=1)
        finally:
            SEEN.reset(token)
    assert results == [0, 1, 2, 3]
    assert seen == [-1, -1, -1, -1]


async def test_a_consumer_that_stops_at_a_result_finds_no_new_prediction_started() -> None:
    """The worker that delivered the result waits for the consumer before taking another input:
    breaking out at the first result leaves exactly the one prediction that was asked for, and
    no clean-up behind (a create cut off on the wire would leave an orphan for the reaper)."""
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda n=0: n)
    # Unpaced: a create then reaches the wire in the fewest steps of the loop.
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        async with areplicate.as_completed(
            client, "acme/echo", [{"n": i} for i in range(5)], concurrency=1, hold=False
        ) as results:
            async for item in results:
                assert item.prediction is not None
                assert item.prediction.output == 0
                break
        assert our_tasks() == []
    assert len(fake.predictions) == 1


async def test_a_step_that_swallows_the_cancel_still_stops_its_worker() -> None:
    """The consumer stops while an item's step is running; the step catches the cancel and
    returns. Its worker must end all the same: no new input taken, nothing hangs."""
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda n=0: n)
    pulled: list[int] = []

    def inputs() -> Iterator[int]:
        for i in range(1000):
            pulled.append(i)
            yield i

    async def step(client: areplicate.Client, n: int) -> Any:
        try:
            await asyncio.sleep(30 if n else 0)
        except asyncio.CancelledError:
            return -1
        return await client.run("acme/echo", {"n": n})

    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        async with asyncio.timeout(10):
            async with areplicate.as_completed(client, step, inputs(), concurrency=2) as results:
                async for item in results:
                    assert item.result == 0
                    break
        assert our_tasks() == []
    assert len(fake.predictions) == 1
    assert len(pulled) == 2


async def test_a_step_raising_cancelled_error_itself_is_that_items_error() -> None:
    """A CancelledError that is not the fan-out's own (the step awaited something that was
    cancelled) ends that item, not the worker: the other items still get their results."""
    fake = FakeReplicate()

    async def step(client: areplicate.Client, n: int) -> int:
        if n == 1:
            raise asyncio.CancelledError("an inner task was cancelled")
        return n

    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        async with asyncio.timeout(10):
            results = await areplicate.gather_predictions(
                client, step, [0, 1, 2], concurrency=1, return_exceptions=True
            )
    assert results[0] == 0
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] == 2


async def test_closing_the_client_under_a_step_fan_out_cancels_each_prediction_once() -> None:
    """The steps are the client's work: close() cancels them, and each cancelled step cancels
    its own prediction (close() adds no second cancel of its own)."""
    fake = FakeReplicate()
    fake.add_model("acme/slow", slow)

    async def step(client: areplicate.Client, n: int) -> Any:
        return await client.run("acme/slow", {"n": n}, hold=False)

    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        task = asyncio.create_task(
            areplicate.gather_predictions(client, step, range(3), concurrency=3)
        )
        async with asyncio.timeout(10):
            await until_created(fake, 3)
            await client.aclose()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, RuntimeError), outcome  # the gather is told, not left waiting
    assert fake.counts.get("POST /v1/predictions/{id}/cancel", 0) == 3
    assert {p["status"] for p in fake.predictions} == {"canceled"}


async def test_inputs_filled_after_the_call_are_all_run() -> None:
    """The inputs are read when the iteration starts, as they are then."""
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda n=0: n)
    inputs: list[dict[str, int]] = []
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        fan = areplicate.as_completed(client, "acme/echo", inputs, concurrency=3)
        inputs.extend({"n": i} for i in range(5))
        async with fan:
            outputs = sorted([item.result.output async for item in fan])
    assert outputs == [0, 1, 2, 3, 4]


async def test_closing_the_client_under_a_consumer_ends_its_iteration_with_an_error() -> None:
    """Another task closes the client while the consumer waits for the next result: the
    consumer is told (an error naming the closed client), and each running prediction is
    cancelled. Nothing waits forever for a result no worker will queue."""
    fake = FakeReplicate()
    fake.add_model("acme/slow", slow)
    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        fan = areplicate.as_completed(
            client, "acme/slow", [{"n": i} for i in range(5)], concurrency=3, hold=False
        )

        async def consume() -> list[Any]:
            async with fan:
                return [item async for item in fan]

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            await until_created(fake, 3)
            await client.aclose()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, RuntimeError), outcome
    assert "closed" in str(outcome)
    assert [p["status"] for p in fake.predictions] == ["canceled"] * 3


async def test_closing_the_client_under_gather_raises_in_its_caller() -> None:
    """The same for gather_predictions with a step: its caller gets the error, not a hang."""
    fake = FakeReplicate()
    started = asyncio.Event()

    async def step(client: areplicate.Client, n: int) -> int:
        started.set()
        await asyncio.sleep(30)
        return n

    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        task = asyncio.create_task(
            areplicate.gather_predictions(client, step, range(4), concurrency=2)
        )
        async with asyncio.timeout(10):
            await started.wait()
            await client.aclose()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, RuntimeError), outcome
    assert "closed" in str(outcome)


async def test_closing_the_fan_out_from_another_task_ends_its_consumer() -> None:
    """``aclose()`` called by another task while the consumer waits: the consumer's loop ends
    (as after a ``break``), and the running predictions are cancelled."""
    fake = FakeReplicate()
    fake.add_model("acme/slow", slow)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        fan = areplicate.as_completed(
            client, "acme/slow", [{"n": i} for i in range(5)], concurrency=2, hold=False
        )

        async def consume() -> list[Any]:
            return [item async for item in fan]

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            await until_created(fake, 2)
            await fan.aclose()
            got = await task
        assert got == []
        assert our_tasks() == []
    assert [p["status"] for p in fake.predictions] == ["canceled"] * 2


async def test_the_last_progress_report_has_nothing_in_flight() -> None:
    """When the last result is handed out, nothing is in flight any more."""
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda n=0: n)
    reports: list[areplicate.Progress] = []
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        async with asyncio.timeout(10):
            await areplicate.gather_predictions(
                client,
                "acme/echo",
                [{"n": i} for i in range(6)],
                concurrency=3,
                on_progress=reports.append,
            )
    assert [r.done for r in reports] == [1, 2, 3, 4, 5, 6]
    assert reports[-1].in_flight == 0
    assert all(0 <= r.in_flight <= 3 for r in reports)


@pytest.mark.parametrize("closed", ["client", "fan-out"])
async def test_a_close_as_the_workers_start_still_ends_the_consumer(closed: str) -> None:
    """The close comes in the loop pass after the consumer's first ``next()`` started the
    workers, before any of them ran: a worker cancelled that early never runs its own code, and
    the consumer must be told all the same."""
    fake = FakeReplicate()
    fake.add_model("acme/slow", slow)
    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        fan = areplicate.as_completed(
            client, "acme/slow", [{"n": i} for i in range(3)], concurrency=2, hold=False
        )
        consumer = asyncio.create_task(anext(fan))
        await asyncio.sleep(0)  # the consumer's first step runs: it starts the workers
        assert not consumer.done()
        async with asyncio.timeout(10):
            await (client.aclose() if closed == "client" else fan.aclose())
            (outcome,) = await asyncio.gather(consumer, return_exceptions=True)
        await client.aclose()
    expected = RuntimeError if closed == "client" else StopAsyncIteration
    assert isinstance(outcome, expected), outcome
    assert fake.predictions == []


async def test_a_fan_out_on_a_closed_client_fails_before_reading_an_input() -> None:
    """One error at once, not one per input: every item would meet the closed client."""
    pulled: list[int] = []

    def inputs() -> Iterator[dict[str, int]]:
        for i in range(1000):
            pulled.append(i)
            yield {"n": i}

    client = areplicate.Client("r8_test", base_url="http://127.0.0.1:9", rate_limits=None)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await areplicate.gather_predictions(client, "acme/echo", inputs())
    assert pulled == []


async def test_a_result_waiting_for_room_when_the_client_closes_is_still_handed_out() -> None:
    """The consumer is busy elsewhere when the client closes: it still gets the results that
    were queued and the finished one whose worker waits for room in the queue (it is not
    dropped), then the error."""
    fake = FakeReplicate()

    async def model(n: int = 0) -> int:
        if n >= 4:
            await asyncio.sleep(30)
        return n

    fake.add_model("acme/model", model)
    go_on = asyncio.Event()
    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        fan = areplicate.as_completed(
            client, "acme/model", [{"n": i} for i in range(6)], concurrency=2, hold=False
        )
        got: list[int] = []

        async def consume() -> None:
            async with fan:
                async for item in fan:
                    assert item.prediction is not None
                    got.append(item.prediction.output)
                    await go_on.wait()

        def succeeded() -> int:
            return sum(p["status"] == "succeeded" for p in fake.predictions)

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            # 0 handed out, 1 and 2 queued (the queue holds 2), 3 waiting for room, 4 running.
            while succeeded() < 4 or len(fake.predictions) < 5:  # noqa: ASYNC110 - polls the fake, with a deadline
                await asyncio.sleep(0.01)
            await client.aclose()
            go_on.set()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, RuntimeError), outcome
    assert sorted(got) == [0, 1, 2, 3]
    assert [p["status"] for p in fake.predictions].count("canceled") == 1


async def test_async_inputs_that_swallow_the_cancel_start_nothing_after_the_close() -> None:
    """An async generator that catches the close's cancel and yields another input: that input
    is not started (close() cancels work once; a step started after it would run on), and the
    consumer gets the error at once."""
    pulling = asyncio.Event()
    steps: list[int] = []

    async def inputs() -> AsyncIterator[int]:
        for i in range(50):
            pulling.set()
            with contextlib.suppress(asyncio.CancelledError):  # swallowed, as the test is about
                await asyncio.sleep(30)
            yield i

    async def step(client: areplicate.Client, n: int) -> int:
        steps.append(n)
        await asyncio.sleep(30)
        return n

    fake = FakeReplicate()
    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        task = asyncio.create_task(
            areplicate.gather_predictions(client, step, inputs(), concurrency=2)
        )
        async with asyncio.timeout(10):
            await pulling.wait()
            await client.aclose()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, RuntimeError), outcome
    assert steps == []


async def test_gather_stops_at_the_first_error_with_no_new_item_started() -> None:
    """Without ``return_exceptions`` an item's error (a 422 for its input) ends
    gather_predictions: the worker that delivered it waits for the consumer to raise it before
    taking another input, so no further create goes out."""
    fake = FakeReplicate()

    def echo(n: int = 0) -> int:
        return n

    fake.add_model("acme/echo", echo)
    inputs = [{"n": 0}, {"n": "not a number"}, {"n": 2}, {"n": 3}]
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        async with asyncio.timeout(10):
            with pytest.raises(areplicate.InvalidRequestError):
                await areplicate.gather_predictions(
                    client, "acme/echo", inputs, concurrency=1, hold=False
                )
    assert [p["input"] for p in fake.predictions] == [{"n": 0}]
    assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 2


async def test_a_step_that_finished_as_the_client_closed_is_still_handed_out() -> None:
    """The step has returned, but its worker has not yet resumed, when the client closes: the
    close's cancel reaches the worker at that await, and the step's value must still reach the
    consumer (before the closed-client error)."""
    returned = asyncio.Event()

    async def step(client: areplicate.Client, n: int) -> int:
        if n:
            await asyncio.sleep(30)
        returned.set()
        return 100 + n

    fake = FakeReplicate()
    async with fake.serve() as url:
        client = areplicate.Client("r8_test", base_url=url, rate_limits=None)
        got: list[Any] = []

        async def consume() -> None:
            async with areplicate.as_completed(client, step, range(2), concurrency=2) as fan:
                async for item in fan:
                    got.append(item.result)

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            await returned.wait()  # woken before the worker: the step's task just ended
            await client.aclose()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, RuntimeError), outcome
    assert got == [100]


async def test_a_second_task_reading_the_same_fan_out_is_refused() -> None:
    """One consumer per fan-out: a second task asking for the next item while the first waits
    gets an error saying so, instead of both waiting forever."""
    fake = FakeReplicate()
    fake.add_model("acme/slow", slow)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
        areplicate.as_completed(client, "acme/slow", [{"n": 0}], concurrency=1, hold=False) as fan,
    ):
        first = asyncio.create_task(anext(fan))
        await asyncio.sleep(0)  # the first reader is waiting
        async with asyncio.timeout(10):
            with pytest.raises(RuntimeError, match="one consumer"):
                await anext(fan)
        assert not first.done()  # the first reader still waits: the fan-out goes on
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
