"""client.trainings against a mocked API (aioresponses)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses

import areplicate
from areplicate import PollSchedule, Status
from areplicate._models import Training

from ._mockapi import BASE, client, sent, total_requests

VERSION = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
CREATE_URL = f"{BASE}/models/stability-ai/sdxl/versions/{VERSION}/trainings"


def training_body(tid: str = "t1", status: str = "starting", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": tid,
        "model": "stability-ai/sdxl",
        "version": VERSION,
        "input": {"input_images": "https://example.com/data.zip"},
        "logs": "",
        "error": None,
        "status": status,
        "created_at": "2023-08-16T19:33:26.678378653Z",
        "urls": {
            "get": f"https://api.replicate.com/v1/predictions/{tid}",
            "cancel": f"https://api.replicate.com/v1/predictions/{tid}/cancel",
        },
    }
    body.update(extra)
    return body


@pytest.fixture
async def api() -> AsyncIterator[areplicate.Client]:
    fast = PollSchedule(first=0.001, ratio=0.0, cap=0.001)
    async with client(poll=fast) as c:
        yield c


class TestCreate:
    async def test_create_posts_destination_and_input_to_the_version(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.post(CREATE_URL, status=201, payload=training_body())
        training = await api.trainings.create(
            f"stability-ai/sdxl:{VERSION}",
            destination="acme/sdxl-me",
            input={"input_images": "https://example.com/data.zip"},
            webhook="https://example.com/hook",
        )
        assert isinstance(training, Training)
        assert training.status is Status.STARTING
        (call,) = sent(mocked, "POST", CREATE_URL)
        assert json.loads(call["data"]) == {
            "destination": "acme/sdxl-me",
            "input": {"input_images": "https://example.com/data.zip"},
            "webhook": "https://example.com/hook",
        }

    async def test_missing_destination_is_not_found(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.post(
            CREATE_URL,
            status=404,
            payload={"detail": "The specified training destination does not exist", "status": 404},
        )
        with pytest.raises(areplicate.NotFoundError, match="destination does not exist"):
            await api.trainings.create(
                f"stability-ai/sdxl:{VERSION}", destination="acme/nope", input={}
            )
        assert len(sent(mocked, "POST", CREATE_URL)) == 1  # a create is never retried blindly

    @pytest.mark.parametrize(
        ("ref", "destination"),
        [
            ("stability-ai/sdxl", "acme/x"),  # no version
            (VERSION, "acme/x"),  # no model
            (f"stability-ai/sdxl:{VERSION}", "x"),
            (f"stability-ai/sdxl:{VERSION}", f"acme/x:{VERSION}"),
        ],
    )
    async def test_refs_are_checked_before_sending(
        self, api: areplicate.Client, mocked: aioresponses, ref: str, destination: str
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError):
            await api.trainings.create(ref, destination=destination, input={})
        assert total_requests(mocked) == 0

    @pytest.mark.parametrize(
        ("webhook", "events"),
        [("ftp://x", None), (None, ["completed"]), ("https://x.org", ["done"])],
    )
    async def test_webhook_options_are_checked(
        self, api: areplicate.Client, webhook: str | None, events: list[str] | None
    ) -> None:
        with pytest.raises(ValueError, match="webhook"):
            await api.trainings.create(
                f"stability-ai/sdxl:{VERSION}",
                destination="acme/x",
                input={},
                webhook=webhook,
                webhook_events_filter=events,
            )


class TestReadAndCancel:
    async def test_get_list_and_cancel(self, api: areplicate.Client, mocked: aioresponses) -> None:
        mocked.get(f"{BASE}/trainings/t1", payload=training_body(status="processing"))
        mocked.get(
            f"{BASE}/trainings",
            payload={
                "next": None,
                "previous": None,
                "results": [training_body(), training_body("t2")],
            },
        )
        mocked.post(
            f"{BASE}/trainings/t1/cancel",
            payload=training_body(status="canceled", completed_at="2023-08-16T19:34:00Z"),
        )
        assert (await api.trainings.get("t1")).status is Status.PROCESSING
        assert [t.id async for t in api.trainings.list()] == ["t1", "t2"]
        canceled = await api.trainings.cancel("t1")
        assert canceled.status is Status.CANCELED
        assert canceled.is_terminal

    @pytest.mark.parametrize("bad", ["", "a/b", " t1"])
    async def test_bad_ids_are_refused(self, api: areplicate.Client, bad: str) -> None:
        with pytest.raises(ValueError, match="training id"):
            await api.trainings.get(bad)


class TestWait:
    async def test_wait_polls_the_trainings_route_until_terminal(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        url = f"{BASE}/trainings/t1"
        mocked.get(url, payload=training_body(status="starting"))
        mocked.get(url, payload=training_body(status="processing"))
        done = training_body(status="succeeded", output={"version": "acme/x:abc", "weights": "w"})
        mocked.get(url, payload=done)
        training = await api.trainings.wait("t1")
        assert training.status is Status.SUCCEEDED
        assert training.output == {"version": "acme/x:abc", "weights": "w"}
        assert len(sent(mocked, "GET", url)) == 3

    async def test_a_failed_training_is_returned_not_raised(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/trainings/t1", payload=training_body(status="failed", error="OOM"))
        training = await api.trainings.wait(Training(id="t1"))
        assert (training.status, training.error) == (Status.FAILED, "OOM")

    async def test_terminal_training_returns_without_a_request(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        done = Training(id="t1", status=Status.ABORTED)
        assert await api.trainings.wait(done) is done
        assert total_requests(mocked) == 0

    async def test_timeout_raises_and_cancels_the_training(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/trainings/t1", payload=training_body(status="processing"), repeat=True)
        mocked.post(f"{BASE}/trainings/t1/cancel", payload=training_body(status="canceled"))
        with pytest.raises(areplicate.WaitTimeoutError) as caught:
            await api.trainings.wait("t1", timeout=0.05)
        assert caught.value.prediction.id == "t1"
        assert len(sent(mocked, "POST", f"{BASE}/trainings/t1/cancel")) == 1

    async def test_timeout_can_leave_the_training_running(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/trainings/t1", payload=training_body(status="processing"), repeat=True)
        with pytest.raises(areplicate.WaitTimeoutError):
            await api.trainings.wait("t1", timeout=0.05, cancel_on_exit=False)
        assert sent(mocked, "POST", f"{BASE}/trainings/t1/cancel") == []
