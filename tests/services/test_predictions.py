"""client.predictions against the fake server: what a user sees for each method."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

import areplicate
from areplicate import Status
from areplicate.testing import FakeReplicate

from .conftest import Gate

CREATE_OFFICIAL = "POST /v1/models/{owner}/{name}/predictions"
CREATE_VERSION = "POST /v1/predictions"
GET = "GET /v1/predictions/{id}"
CANCEL = "POST /v1/predictions/{id}/cancel"


def creates(fake: FakeReplicate) -> int:
    return fake.counts[CREATE_OFFICIAL] + fake.counts[CREATE_VERSION]


class TestCreate:
    async def test_official_model_uses_the_model_route(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        p = await client.predictions.create("acme/echo", {"text": "hi"})
        assert p.id
        assert p.model == "acme/echo"
        assert p.input == {"text": "hi"}
        assert fake.counts[CREATE_OFFICIAL] == 1
        assert fake.counts[CREATE_VERSION] == 0

    async def test_versioned_ref_and_bare_version_use_predictions_route(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        version = fake.add_model("acme/other", lambda text="": text, official=False).version_id
        p1 = await client.predictions.create(f"acme/other:{version}", {"text": "a"})
        p2 = await client.predictions.create(version, {"text": "b"})
        assert {p1.version, p2.version} == {version}
        assert fake.counts[CREATE_VERSION] == 2
        assert fake.counts[CREATE_OFFICIAL] == 0

    async def test_community_model_without_version_is_not_found(
        self, client: areplicate.Client
    ) -> None:
        with pytest.raises(areplicate.NotFoundError):
            await client.predictions.create("acme/community", {"text": "x"})

    async def test_wait_true_returns_finished_prediction_in_one_request(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        p = await client.predictions.create("acme/echo", {"text": "hi"}, hold=True)
        assert p.status == Status.SUCCEEDED
        assert p.output == {"text": "hi", "n": 0}
        assert sum(fake.counts.values()) == 1

    async def test_wait_window_sends_prefer_header(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        await client.predictions.create("acme/echo", {"text": "hi"}, hold=7)
        request = fake.requests[-1]
        assert request.headers["Prefer"] == "wait=7"

    async def test_lifetime_sends_cancel_after_and_sets_deadline(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        p = await client.predictions.create(
            "acme/echo", {"text": "hi"}, lifetime=dt.timedelta(minutes=5)
        )
        assert fake.requests[-1].headers["Cancel-After"] == "5m"
        assert p.deadline is not None

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"hold": 61}, "hold must be"),
            ({"hold": 0}, "hold must be"),
            ({"lifetime": "2s"}, "at least 5s"),
            ({"lifetime": "soon"}, "not a duration"),
            ({"webhook": "ftp://example.com/hook"}, "https://"),
            ({"webhook": "http://example.com/hook"}, "https://"),
            ({"webhook": "https://example.com/h", "webhook_events_filter": ["done"]}, "unknown"),
            ({"webhook": "https://example.com/h", "webhook_events_filter": "completed"}, "list"),
            ({"webhook_events_filter": ["completed"]}, "without a webhook"),
        ],
    )
    async def test_bad_options_fail_before_sending(
        self,
        client: areplicate.Client,
        fake: FakeReplicate,
        kwargs: dict[str, object],
        message: str,
    ) -> None:
        with pytest.raises(ValueError, match=message):
            await client.predictions.create("acme/echo", {"text": "x"}, **kwargs)  # type: ignore[arg-type]
        assert not fake.requests

    async def test_bad_reference_lists_the_accepted_forms(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError, match="accepted forms"):
            await client.predictions.create("just-a-name", {})
        assert not fake.requests

    async def test_input_must_be_a_mapping(self, client: areplicate.Client) -> None:
        with pytest.raises(TypeError, match="mapping"):
            await client.predictions.create("acme/echo", ["text"])  # type: ignore[arg-type]


class TestGetCancelList:
    async def test_get_unknown_id_raises_not_found(self, client: areplicate.Client) -> None:
        with pytest.raises(areplicate.NotFoundError) as info:
            await client.predictions.get("doesnotexist")
        assert info.value.status == 404

    async def test_cancel_mid_run_stops_the_model(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        p = await client.predictions.create("acme/gated", {"text": "x"})
        await gate.started.wait()
        canceled = await client.predictions.cancel(p)
        assert canceled.status == Status.CANCELED
        assert fake.running == 0
        again = await client.predictions.cancel(p.id)
        assert again.status == Status.CANCELED

    async def test_list_follows_pages_and_yields_each_once(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        created = {(await client.predictions.create("acme/echo", {"n": i})).id for i in range(250)}
        seen = [p.id async for p in client.predictions.list()]
        assert len(seen) == len(set(seen)) == 250
        assert set(seen) == created
        assert fake.counts["GET /v1/predictions"] == 3

    async def test_pages_expose_whole_pages_newest_first(self, client: areplicate.Client) -> None:
        for i in range(3):
            await client.predictions.create("acme/echo", {"n": i})
        pages = [page async for page in client.predictions.pages()]
        assert [p.input["n"] for p in pages[0].results] == [2, 1, 0]
        assert pages[-1].next is None


class TestWait:
    async def test_wait_ends_on_success(self, client: areplicate.Client, gate: Gate) -> None:
        p = await client.predictions.create("acme/gated", {"text": "go"})
        await gate.started.wait()
        gate.release.set()
        done = await client.predictions.wait(p.id)
        assert done.status == Status.SUCCEEDED
        assert done.output == "GO"
        assert done.is_terminal

    async def test_wait_ends_on_failure_without_raising(self, client: areplicate.Client) -> None:
        p = await client.predictions.create("acme/fail", {"text": "x"})
        done = await client.predictions.wait(p)
        assert done.status == Status.FAILED
        assert "cannot handle" in (done.error or "")

    async def test_cancel_during_wait_ends_the_wait(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        p = await client.predictions.create("acme/gated", {"text": "x"})
        waiter = asyncio.create_task(client.predictions.wait(p))
        await gate.started.wait()
        await client.predictions.cancel(p)
        done = await waiter
        assert done.status == Status.CANCELED
        assert fake.running == 0

    async def test_cancelled_task_cancels_remote_prediction(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        p = await client.predictions.create("acme/gated", {"text": "x"})
        waiter = asyncio.create_task(client.predictions.wait(p))
        await gate.started.wait()
        # The waiter is inside wait() (it has polled), not still queued to start.
        while fake.counts[GET] == 0:  # noqa: ASYNC110 - polling the fake's state, not a timer
            await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert fake.prediction(p.id)["status"] == "canceled"
        assert fake.running == 0

    async def test_timeout_raises_with_last_state_and_cancels(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        p = await client.predictions.create("acme/gated", {"text": "x"})
        await gate.started.wait()
        with pytest.raises(areplicate.WaitTimeoutError) as info:
            await client.predictions.wait(p, timeout=0.3)
        assert info.value.prediction.id == p.id
        assert info.value.prediction.status == Status.PROCESSING
        assert fake.prediction(p.id)["status"] == "canceled"

    async def test_timeout_with_cancel_on_exit_false_leaves_it_running(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        p = await client.predictions.create("acme/gated", {"text": "x"})
        await gate.started.wait()
        with pytest.raises(areplicate.WaitTimeoutError):
            await client.predictions.wait(p, timeout=0.2, cancel_on_exit=False)
        assert fake.prediction(p.id)["status"] == "processing"
        gate.release.set()
        assert (await client.predictions.wait(p)).status == Status.SUCCEEDED

    @pytest.mark.slow
    async def test_lifetime_before_start_ends_aborted(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        p = await client.predictions.create("acme/late", {"text": "x"}, lifetime="5s")
        done, raised = await asyncio.gather(
            client.predictions.wait(p, timeout=20),
            client.run("acme/late", {"text": "y"}, lifetime="5s", timeout=20),
            return_exceptions=True,
        )
        assert isinstance(done, areplicate.Prediction)
        assert done.status == Status.ABORTED
        assert done.is_terminal
        assert isinstance(raised, areplicate.PredictionCanceledError)
        assert "aborted" in str(raised)
        assert fake.running == 0


class TestRun:
    async def test_run_returns_output(self, client: areplicate.Client) -> None:
        assert await client.run("acme/echo", {"text": "hey", "n": 2}) == {"text": "hey", "n": 2}

    async def test_run_failure_raises_with_error_and_id(self, client: areplicate.Client) -> None:
        with pytest.raises(areplicate.PredictionFailedError) as info:
            await client.run("acme/fail", {"text": "x"})
        err = info.value
        assert err.prediction.status == Status.FAILED
        assert err.prediction.id in str(err)
        assert "cannot handle" in str(err)

    async def test_run_timeout_cancels_remote(
        self, client: areplicate.Client, fake: FakeReplicate, gate: Gate
    ) -> None:
        with pytest.raises(areplicate.WaitTimeoutError):
            await client.run("acme/gated", {"text": "x"}, hold=False, timeout=0.5)
        assert fake.running == 0
        assert [p["status"] for p in fake.predictions] == ["canceled"]

    async def test_cancelled_during_blocking_create_is_cleaned_up(
        self, base_url: str, fake: FakeReplicate, gate: Gate
    ) -> None:
        async with areplicate.Client(
            api_token="r8_test_token", base_url=base_url, rate_limits=None
        ) as client:
            task = asyncio.create_task(client.run("acme/gated", {"text": "x"}, hold=True))
            await gate.started.wait()  # the create is being held by Prefer: wait
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # Leaving the client waited for the background clean-up of the abandoned create.
        assert fake.running == 0
        assert [p["status"] for p in fake.predictions] == ["canceled"]


class TestStream:
    async def test_stream_yields_tokens_in_order_then_done(self, client: areplicate.Client) -> None:
        p = await client.predictions.create("acme/words", {"text": "one two three"})
        events = [e async for e in client.predictions.stream(p)]
        outputs = [e.data for e in events if e.event == "output"]
        assert outputs == ["one ", "two ", "three "]
        assert events[-1].event == "done"

    async def test_model_without_stream_gives_clear_error(self, client: areplicate.Client) -> None:
        p = await client.predictions.create("acme/echo", {"text": "x"})
        with pytest.raises(areplicate.ReplicateError, match="does not stream"):
            async for _ in client.predictions.stream(p):
                pass
