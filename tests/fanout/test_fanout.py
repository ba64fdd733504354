"""gather_predictions / as_completed against the fake server."""

from __future__ import annotations

import asyncio
import gc
import itertools
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

import areplicate
from areplicate import Status
from areplicate.testing import FakeRateLimits, FakeReplicate

from ._tasks import our_tasks

CREATE = "POST /v1/models/{owner}/{name}/predictions"


class Gate:
    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.running = 0
        self.enough = asyncio.Event()
        self.release = asyncio.Event()


@pytest.fixture
def gate() -> Gate:
    return Gate(threshold=20)


@pytest.fixture
def fake(gate: Gate) -> FakeReplicate:
    fake = FakeReplicate()

    def echo(n: int = 0) -> int:
        return n

    def picky(n: int = 0) -> int:
        if n % 10 == 0:
            raise ValueError(f"no multiples of ten: {n}")
        return n * 2

    async def gated(n: int = 0) -> int:
        gate.running += 1
        if gate.running >= gate.threshold:
            gate.enough.set()
        await gate.release.wait()
        return n

    fake.add_model("acme/echo", echo)
    fake.add_model("acme/picky", picky)
    fake.add_model("acme/gated", gated)
    return fake


async def test_thousand_inputs_each_matched_to_its_result(
    client: areplicate.Client, fake: FakeReplicate
) -> None:
    inputs = [{"n": i} for i in range(1000)]
    results = await areplicate.gather_predictions(client, "acme/echo", inputs, concurrency=100)
    assert len(results) == 1000
    assert [r.output for r in results] == list(range(1000))
    assert all(r.input == {"n": i} for i, r in enumerate(results))
    assert fake.counts[CREATE] == 1000
    assert len({r.id for r in results}) == 1000


async def test_failed_model_results_do_not_disturb_the_others(client: areplicate.Client) -> None:
    results = await areplicate.gather_predictions(
        client, "acme/picky", ({"n": i} for i in range(50)), concurrency=8
    )
    for i, p in enumerate(results):
        if i % 10 == 0:
            assert p.status == Status.FAILED
            assert f"multiples of ten: {i}" in (p.error or "")
        else:
            assert p.status == Status.SUCCEEDED
            assert p.output == i * 2


async def test_as_completed_items_carry_index_and_input(client: areplicate.Client) -> None:
    seen = {}
    async with areplicate.as_completed(
        client, "acme/echo", [{"n": i} for i in range(30)], concurrency=5
    ) as results:
        async for item in results:
            assert item.error is None
            assert item.prediction is not None
            seen[item.index] = (item.input, item.prediction.output)
    assert seen == {i: ({"n": i}, i) for i in range(30)}


async def test_progress_is_reported_for_every_completion(client: areplicate.Client) -> None:
    snapshots: list[areplicate.Progress] = []
    await areplicate.gather_predictions(
        client, "acme/picky", [{"n": i} for i in range(20)], on_progress=snapshots.append
    )
    assert [s.done for s in snapshots] == list(range(1, 21))
    last = snapshots[-1]
    assert (last.total, last.succeeded, last.failed, last.errors) == (20, 18, 2, 0)


async def test_per_item_errors_with_return_exceptions(
    client: areplicate.Client,
) -> None:
    inputs: list[object] = [{"n": 1}, "not a mapping", {"n": 3}]
    results = await areplicate.gather_predictions(
        client,
        "acme/echo",
        inputs,  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert isinstance(results[0], areplicate.Prediction)
    assert isinstance(results[1], TypeError)
    assert "input #1" in str(results[1])
    assert isinstance(results[2], areplicate.Prediction)


async def test_first_error_is_raised_without_return_exceptions(
    client: areplicate.Client,
) -> None:
    with pytest.raises(TypeError, match="input #1"):
        await areplicate.gather_predictions(client, "acme/echo", [{"n": 1}, 5, {"n": 3}])  # type: ignore[list-item]


async def test_unknown_model_stops_the_whole_fan_out(
    client: areplicate.Client, fake: FakeReplicate
) -> None:
    with pytest.raises(areplicate.NotFoundError):
        await areplicate.gather_predictions(
            client, "acme/missing", ({"n": i} for i in range(10_000)), concurrency=4
        )
    assert fake.counts[CREATE] < 50


async def test_cancelling_the_caller_cancels_remote_predictions(
    base_url: str, fake: FakeReplicate, gate: Gate
) -> None:
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        task = asyncio.create_task(
            areplicate.gather_predictions(
                c, "acme/gated", [{"n": i} for i in range(100)], concurrency=gate.threshold
            )
        )
        await gate.enough.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fake.running == 0
    assert {p["status"] for p in fake.predictions} == {"canceled"}
    assert len(fake.predictions) == gate.threshold
    assert our_tasks() == []


async def test_breaking_out_early_cancels_the_rest(
    base_url: str, fake: FakeReplicate, gate: Gate
) -> None:
    gate.release.set()  # predictions finish, but slowly enough that others are in flight
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        fake.add_model("acme/slow", _slow)
        async with areplicate.as_completed(
            c, "acme/slow", [{"n": i} for i in range(200)], concurrency=10, hold=False
        ) as results:
            async for item in results:
                assert item.prediction is not None
                break
        assert our_tasks() == []
    assert fake.running == 0
    statuses = [p["status"] for p in fake.predictions]
    # Only what was in flight when we broke out was ever started, and all of it has ended:
    # finished on its own, or cancelled by us.
    assert len(statuses) <= 2 * 10
    assert set(statuses) <= {"succeeded", "canceled"}
    assert statuses.count("canceled") >= 1


async def _slow(n: int = 0) -> int:
    await asyncio.sleep(0.05 * (n % 5 + 1))
    return n


async def test_breaking_without_async_with_still_cleans_up(
    base_url: str, fake: FakeReplicate
) -> None:
    fake.add_model("acme/slow", _slow)
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        async for _item in areplicate.as_completed(
            c, "acme/slow", [{"n": i} for i in range(100)], concurrency=10, hold=False
        ):
            break
        gc.collect()
    # Leaving the client waited for the abandoned workers to cancel their predictions.
    assert fake.running == 0
    assert our_tasks() == []
    statuses = [p["status"] for p in fake.predictions]
    assert len(statuses) <= 2 * 10
    assert set(statuses) <= {"succeeded", "canceled"}


async def test_million_inputs_are_pulled_lazily(client: areplicate.Client) -> None:
    pulled = 0

    def inputs() -> Iterator[dict[str, int]]:
        nonlocal pulled
        for i in itertools.count():
            if i >= 1_000_000:
                return
            pulled += 1
            yield {"n": i}

    tracemalloc.start()
    try:
        got = 0
        async with areplicate.as_completed(client, "acme/echo", inputs(), concurrency=16) as res:
            async for _ in res:
                got += 1
                if got == 100:
                    break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == 100
    # Only what the workers and the result queue can hold is ever read ahead.
    assert pulled <= 100 + 2 * 16 + 1
    assert peak < 20 * 1024 * 1024


async def test_async_iterable_inputs(client: areplicate.Client) -> None:
    async def inputs() -> AsyncIterator[dict[str, int]]:
        for i in range(10):
            yield {"n": i}

    results = await areplicate.gather_predictions(client, "acme/echo", inputs(), concurrency=3)
    assert [r.output for r in results] == list(range(10))


async def test_bad_arguments_fail_at_once(client: areplicate.Client) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        areplicate.as_completed(client, "acme/echo", [], concurrency=0)
    with pytest.raises(areplicate.InvalidReferenceError):
        areplicate.as_completed(client, "nope", [])
    with pytest.raises(TypeError, match="single mapping"):
        areplicate.as_completed(client, "acme/echo", {"n": 1})


@pytest.mark.slow
async def test_rate_limited_fan_out_stays_under_the_limits() -> None:
    """2000 predictions at concurrency 500 against the fake's token buckets: no errors, no
    duplicates, under 1 % of requests answered 429.

    The rates are Replicate's scaled up 20x (the burst left as it is, so the bucket is tighter
    than the real one) to keep the suite fast; benchmarks/fanout.py runs the real rates.
    """
    scale = 20
    fake = FakeReplicate(
        rate_limits=FakeRateLimits(
            creates_per_minute=600 * scale,
            creates_burst=100,
            others_per_minute=3000 * scale,
            others_burst=500,
        )
    )

    async def quick(n: int = 0) -> int:
        await asyncio.sleep(0.01)
        return n

    fake.add_model("acme/quick", quick)
    limits = areplicate.RateLimits(
        creates_per_minute=600 * scale, requests_per_minute=3000 * scale, burst=0.25
    )
    async with (
        fake.serve() as url,
        areplicate.Client(
            api_token="r8_test", base_url=url, rate_limits=limits, max_connections=500
        ) as client,
    ):
        results = await areplicate.gather_predictions(
            client, "acme/quick", [{"n": i} for i in range(2000)], concurrency=500
        )
    assert [r.output for r in results] == list(range(2000))
    assert len({r.id for r in results}) == 2000
    assert len(fake.predictions) == 2000  # no duplicates on the server either
    creates = [r for r in fake.requests if r.route == CREATE]
    assert sum(1 for r in creates if r.status == 201) == 2000
    throttled = fake.status_counts[429]
    assert throttled < 0.01 * len(fake.requests), f"{throttled} of {len(fake.requests)} got 429"


async def test_a_404_after_predictions_exist_belongs_to_its_item(
    client: areplicate.Client,
) -> None:
    """An unknown model stops everything (see above); a prediction that vanishes does not."""

    first_done = asyncio.Event()

    async def step(client: areplicate.Client, index: int) -> areplicate.Prediction:
        if index == 3:
            await first_done.wait()
            raise areplicate.NotFoundError(404, detail="The requested resource could not be found.")
        prediction = await client.predictions.create_and_wait("acme/echo", {"n": index})
        first_done.set()
        return prediction

    async with areplicate.as_completed(client, step, range(6), concurrency=6) as results:
        items = {item.index: item async for item in results}
    assert sorted(items) == list(range(6))
    assert isinstance(items[3].error, areplicate.NotFoundError)
    assert all(items[i].ok for i in (0, 1, 2, 4, 5))


async def test_unknown_model_stops_the_whole_fan_out_when_validating(
    client: areplicate.Client, fake: FakeReplicate
) -> None:
    """The schema look-up before the first create is what gets the 404 here."""
    with pytest.raises(areplicate.NotFoundError):
        await areplicate.gather_predictions(
            client,
            "acme/missing",
            ({"n": i} for i in range(10_000)),
            concurrency=4,
            validate=True,
            return_exceptions=True,
        )
    assert fake.counts[CREATE] == 0
    assert sum(fake.counts.values()) < 50
