"""A fan-out runs its inputs on a pool of workers, one per slot: what that must not change."""

from __future__ import annotations

import contextvars

import areplicate
from areplicate.testing import FakeReplicate

from ._tasks import our_tasks

SEEN: contextvars.ContextVar[int | None] = contextvars.ContextVar("SEEN", default=None)


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
