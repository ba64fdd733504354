"""Workflows in one fan-out: a step per item, mixed models (Jobs), and pipelines of Stages.

Every form runs under the same rules as the one-model form: one concurrency limit, the client's one
request budget, progress, ``return_exceptions``, stop-on-fatal and cancellation of every remote
prediction a cancelled caller leaves behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import areplicate
from areplicate.testing import FakeReplicate, FileOut

from ._tasks import our_tasks

CREATE = "POST /v1/models/{owner}/{name}/predictions"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 64


class Gate:
    """Holds the ``acme/held`` model's predictions until released (never, unless a test says);
    ``enough`` is set once ``threshold`` of them are running on the fake."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.enough = asyncio.Event()
        self.threshold = 4
        self.running = 0


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def fake(gate: Gate) -> FakeReplicate:
    fake = FakeReplicate()

    def echo(n: int = 0) -> int:
        return n

    def shout(text: str = "") -> str:
        return text.upper()

    def count(text: str = "") -> list[str]:
        return list(text)

    def fails(n: int = 0) -> int:
        raise ValueError(f"the model refuses {n}")

    def draw(prompt: str) -> FileOut:
        return FileOut(PNG + prompt.encode(), f"{prompt}.png")

    def caption(image: Any) -> str:
        assert isinstance(image, str), f"the caption model got {type(image).__name__}"
        return f"a caption of {image.rsplit('/', 1)[-1]}"

    async def held(image: Any = None) -> str:
        gate.running += 1
        if gate.running >= gate.threshold:
            gate.enough.set()
        await gate.release.wait()
        return "late"

    for name, model in {
        "acme/echo": echo,
        "acme/shout": shout,
        "acme/count": count,
        "acme/fails": fails,
        "acme/draw": draw,
        "acme/caption": caption,
        "acme/held": held,
    }.items():
        fake.add_model(name, model)
    return fake


async def settled_tasks(deadline: float = 5.0) -> None:
    """Wait (with a deadline) until none of the client's tasks is pending (a clean-up task may
    start another, hence the loop)."""
    async with asyncio.timeout(deadline):
        while pending := our_tasks():
            await asyncio.wait(pending)


def downloads(fake: FakeReplicate) -> int:
    """File fetches the fake served (the client's downloads of output files)."""
    return sum(1 for r in fake.requests if "/delivery/" in r.path)


# -- a step in place of the model --------------------------------------------------------------


class TestSteps:
    async def test_results_are_the_steps_values_in_item_order(
        self, client: areplicate.Client
    ) -> None:
        async def double(client: areplicate.Client, n: int) -> int:
            output = await client.run("acme/echo", {"n": n})
            return 2 * output

        # Items can be anything: here plain ints, not input mappings.
        results = await areplicate.gather_predictions(client, double, range(40), concurrency=7)
        assert results == [2 * n for n in range(40)]

    async def test_completed_carries_the_result_and_the_prediction_when_it_is_one(
        self, client: areplicate.Client
    ) -> None:
        async def settle(client: areplicate.Client, n: int) -> Any:
            prediction = await client.predictions.create_and_wait("acme/echo", {"n": n})
            return prediction if n % 2 else f"text {prediction.output}"

        async with areplicate.as_completed(client, settle, range(6)) as fan:
            items = {item.index: item async for item in fan}
        for n in range(6):
            item = items[n]
            assert item.input == n
            assert item.ok
            if n % 2:
                assert isinstance(item.result, areplicate.Prediction)
                assert item.prediction is item.result
                assert item.result.output == n
            else:
                assert item.result == f"text {n}"
                assert item.prediction is None

    async def test_the_model_form_result_is_the_prediction(self, client: areplicate.Client) -> None:
        async with areplicate.as_completed(client, "acme/echo", [{"n": 1}]) as fan:
            [item] = [i async for i in fan]
        assert isinstance(item.result, areplicate.Prediction)
        assert item.prediction is item.result

    async def test_progress_counts_step_results(self, client: areplicate.Client) -> None:
        """A returned unsuccessful Prediction is failed, any other value succeeded, a raise an error."""

        async def step(client: areplicate.Client, n: int) -> Any:
            if n < 3:
                return await client.predictions.create_and_wait("acme/fails", {"n": n})
            if n < 5:
                raise ValueError(f"step refuses {n}")
            return n

        seen: list[areplicate.Progress] = []
        await areplicate.gather_predictions(
            client, step, range(10), return_exceptions=True, on_progress=seen.append
        )
        last = seen[-1]
        assert (last.done, last.total, last.failed, last.errors, last.succeeded) == (
            10,
            10,
            3,
            2,
            5,
        )

    async def test_a_step_error_is_that_items_error(self, client: areplicate.Client) -> None:
        async def step(client: areplicate.Client, n: int) -> int:
            if n == 3:
                raise ValueError("three is right out")
            return int(await client.run("acme/echo", {"n": n}))

        results = await areplicate.gather_predictions(
            client, step, range(6), return_exceptions=True
        )
        assert results[:3] == [0, 1, 2]
        assert results[4:] == [4, 5]
        assert isinstance(results[3], ValueError)

        with pytest.raises(ValueError, match="three is right out"):
            await areplicate.gather_predictions(client, step, range(6))

    async def test_a_step_raising_401_stops_everything(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        """Even with return_exceptions: every other item would fail alike. Their remote
        predictions are cancelled."""

        async def step(client: areplicate.Client, n: int) -> str:
            if n == 0:
                await gate.enough.wait()  # the others' predictions are running on the fake
                raise areplicate.AuthenticationError(401, detail="Invalid token.")
            return str(await client.run("acme/held", {"image": n}))

        with pytest.raises(areplicate.AuthenticationError):
            async with asyncio.timeout(5):
                await areplicate.gather_predictions(
                    client, step, range(5), concurrency=5, return_exceptions=True
                )
        await settled_tasks()  # a create cut off mid-hold is cancelled by the clean-up task
        assert fake.running == 0
        assert [p["status"] for p in fake.predictions] == ["canceled"] * 4

    async def test_a_step_whose_create_hits_an_unknown_model_stops_everything(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        async def step(client: areplicate.Client, n: int) -> Any:
            return await client.run("acme/missing", {"n": n})

        with pytest.raises(areplicate.NotFoundError):
            await areplicate.gather_predictions(
                client, step, range(1000), concurrency=4, return_exceptions=True
            )
        assert fake.counts[CREATE] < 50

    async def test_a_step_takes_no_create_options(self, client: areplicate.Client) -> None:
        async def step(client: areplicate.Client, n: int) -> int:
            return n

        with pytest.raises(ValueError, match="inside the step"):
            areplicate.as_completed(client, step, range(3), timeout=5)  # type: ignore[call-overload]

    async def test_cancelling_the_caller_cancels_every_prediction_the_steps_run(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        async def step(client: areplicate.Client, n: int) -> Any:
            await client.run("acme/echo", {"n": n})
            return await client.run("acme/held", {"image": n})

        gate.threshold = 10
        task = asyncio.create_task(areplicate.gather_predictions(client, step, range(50)))
        async with asyncio.timeout(5):
            await gate.enough.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Creates cut off during their hold are cancelled by the client's clean-up task, the
        # others at once; either way nothing is left running and no task is left pending.
        await settled_tasks()
        assert fake.running == 0
        held = [p for p in fake.predictions if p["model"] == "acme/held"]
        assert len(held) >= 10
        assert {p["status"] for p in held} == {"canceled"}


# -- mixed models: Jobs ------------------------------------------------------------------------


class TestMixedModels:
    async def test_three_models_by_a_hundred_items_in_one_fan_out(
        self, base_url: str, fake: FakeReplicate
    ) -> None:
        jobs: list[Any] = []
        for n in range(100):
            jobs.append(areplicate.Job("acme/echo", {"n": n}))
            jobs.append(areplicate.Job("acme/shout", {"text": f"item {n}"}))
            # What a JSON line holds reads as a Job too.
            jobs.append({"model": "acme/count", "input": {"text": f"{n}"}})
        # One client budget paces every request of the fan-out, whichever model it is for (at
        # rates high enough to keep the test quick).
        limits = areplicate.RateLimits(creates_per_minute=60_000, requests_per_minute=300_000)
        async with areplicate.Client(
            api_token="r8_test", base_url=base_url, rate_limits=limits
        ) as client:
            results = await areplicate.gather_predictions(client, None, jobs, concurrency=50)
            stats = client.stats
        assert fake.counts[CREATE] == 300
        assert len(fake.predictions) == 300
        assert len(results) == 300
        for n in range(100):
            echo, shout, count = results[3 * n : 3 * n + 3]
            assert (echo.model, echo.output) == ("acme/echo", n)
            assert (shout.model, shout.output) == ("acme/shout", f"ITEM {n}")
            assert (count.model, count.output) == ("acme/count", list(f"{n}"))
            assert echo.input == {"n": n}
        # Every request the fake saw went through the one client's budget and counters.
        assert stats.requests == len(fake.requests)
        assert stats.throttled == 0

    async def test_a_job_failure_is_a_result_and_a_bad_item_is_its_error(
        self, client: areplicate.Client
    ) -> None:
        items: list[Any] = [
            areplicate.Job("acme/echo", {"n": 1}),
            areplicate.Job("acme/fails", {"n": 2}),
            {"n": 3},  # no model named
        ]
        results = await areplicate.gather_predictions(client, None, items, return_exceptions=True)
        assert isinstance(results[0], areplicate.Prediction)
        assert results[0].output == 1
        assert isinstance(results[1], areplicate.Prediction)
        assert results[1].status == areplicate.Status.FAILED
        assert isinstance(results[2], TypeError)
        assert "must name its own" in str(results[2])

    async def test_a_job_given_with_a_model_is_a_clear_error(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        with pytest.raises(TypeError, match="pass None as the model"):
            await areplicate.gather_predictions(
                client,
                "acme/echo",
                [areplicate.Job("acme/shout", {"text": "x"})],  # type: ignore[list-item]
            )
        assert fake.counts[CREATE] == 0

    def test_a_job_checks_its_model_and_input_when_made(self) -> None:
        with pytest.raises(areplicate.InvalidReferenceError):
            areplicate.Job("not a model", {})
        with pytest.raises(TypeError, match="mapping"):
            areplicate.Job("acme/echo", ["n", 1])  # type: ignore[arg-type]
        assert areplicate.Job.of({"model": "acme/echo"}) == areplicate.Job("acme/echo", {})
        with pytest.raises(TypeError, match="got keys"):
            areplicate.Job.of({"model": "acme/echo", "inputs": {}})

    async def test_an_unknown_model_among_the_jobs_stops_everything(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        jobs = (
            areplicate.Job("acme/missing" if n == 5 else "acme/echo", {"n": n})
            for n in range(10_000)
        )
        with pytest.raises(areplicate.NotFoundError):
            await areplicate.gather_predictions(
                client, None, jobs, concurrency=4, return_exceptions=True
            )
        assert fake.counts[CREATE] < 50


# -- pipelines: stages that overlap -----------------------------------------------------------


class TestPipelines:
    async def test_an_image_caption_chain_over_50_prompts(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        draw, describe = areplicate.Stage("draw", 8), areplicate.Stage("describe", 32)
        events: list[tuple[str, str, int]] = []
        peaks = {"draw": 0, "describe": 0, "both": 0}

        def note(stage: areplicate.Stage, what: str, n: int) -> None:
            events.append((stage.name, what, n))
            peaks["draw"] = max(peaks["draw"], draw.running)
            peaks["describe"] = max(peaks["describe"], describe.running)
            if draw.running and describe.running:
                peaks["both"] += 1

        async def pipeline(client: areplicate.Client, prompt: str) -> str:
            n = int(prompt[1:])
            async with draw:
                note(draw, "start", n)
                image = await client.run("acme/draw", {"prompt": prompt})
                note(draw, "end", n)
            async with describe:
                note(describe, "start", n)
                text = await client.run("acme/caption", {"image": image})
                note(describe, "end", n)
            return str(text)

        progress: list[tuple[int, str, str]] = []
        prompts = [f"p{i}" for i in range(50)]
        captions = await areplicate.gather_predictions(
            client,
            pipeline,
            prompts,
            concurrency=40,
            on_progress=lambda p: progress.append((p.done, str(draw), str(describe))),
        )
        assert captions == [f"a caption of {p}.png" for p in prompts]
        assert fake.counts[CREATE] == 100
        assert downloads(fake) == 0  # the image went on as its URL
        # Each stage kept to its own limit, and both were busy at the same time.
        assert peaks["draw"] <= 8
        assert peaks["describe"] <= 32
        assert peaks["both"] > 0
        # Overlap: captions started while images were still to be drawn, so the whole took less
        # than the draw stage followed by the describe stage.
        first_caption = events.index(next(e for e in events if e[:2] == ("describe", "start")))
        last_draw = max(i for i, e in enumerate(events) if e[:2] == ("draw", "start"))
        assert first_caption < last_draw
        assert (draw.done, describe.done, draw.running, describe.running) == (50, 50, 0, 0)
        assert progress[-1] == (
            50,
            "draw: 0 running, 0 waiting, 50 done, 0 errors",
            "describe: 0 running, 0 waiting, 50 done, 0 errors",
        )

    async def test_cancelling_the_caller_mid_pipeline_leaves_nothing_running(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        draw, describe = areplicate.Stage("draw", 8), areplicate.Stage("describe", 4)

        async def pipeline(client: areplicate.Client, prompt: str) -> str:
            async with draw:
                image = await client.run("acme/draw", {"prompt": prompt})
            async with describe:
                return str(await client.run("acme/held", {"image": image}))

        task = asyncio.create_task(
            areplicate.gather_predictions(
                client, pipeline, [f"p{i}" for i in range(50)], concurrency=12
            )
        )
        async with asyncio.timeout(5):
            await gate.enough.wait()  # every describe slot is busy on the fake
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settled_tasks()
        assert fake.running == 0
        statuses = [p["status"] for p in fake.predictions if p["model"] == "acme/held"]
        assert statuses == ["canceled"] * 4
        assert all(p["status"] in ("succeeded", "canceled") for p in fake.predictions)
        assert (draw.running, describe.running, describe.waiting) == (0, 0, 0)
        assert describe.errors == 0  # a cancel is not the stage's error

    def test_a_stage_needs_a_whole_limit(self) -> None:
        with pytest.raises(ValueError, match="whole number"):
            areplicate.Stage("x", 0)
        assert "limit 3" in repr(areplicate.Stage("x", 3))

    async def test_a_failing_stage_body_counts_as_its_error(self) -> None:
        stage = areplicate.Stage("x", 1)
        with pytest.raises(ValueError, match="boom"):
            async with stage:
                raise ValueError("boom")
        assert (stage.errors, stage.done, stage.running) == (1, 0, 0)
        async with stage:
            pass
        assert stage.done == 1
