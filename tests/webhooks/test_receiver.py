"""The Receiver on its own: verification, de-duplication, early deliveries, waits, the callback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import anyio
import pytest

import areplicate
from areplicate._webhooks import Receiver, Reply
from areplicate.webhooks import sign

SECRET = "whsec_" + base64.b64encode(b"a test key of some length").decode()
URL = "https://app.example/hooks/replicate"


def delivery(
    pid: str, status: str = "succeeded", msg_id: str | None = None
) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": pid, "status": status, "output": "ok", "input": {}}).encode()
    msg_id = msg_id or f"msg_{pid}_{status}"
    ts = int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, body),
    }
    return headers, body


async def test_a_verified_terminal_delivery_ends_the_wait_at_once() -> None:
    receiver = Receiver(URL, secret=SECRET)
    with anyio.fail_after(5):
        waiting = asyncio.create_task(receiver.result("p1", timeout=30))
        await asyncio.sleep(0)  # the wait registers first
        reply = await receiver.handle(*delivery("p1"))
        got = await waiting
    assert reply == Reply(200, "ok")
    assert got is not None
    assert got.id == "p1"
    assert got.status == areplicate.Status.SUCCEEDED


async def test_a_delivery_that_beats_the_wait_is_kept_for_it() -> None:
    receiver = Receiver(URL, secret=SECRET)
    await receiver.handle(*delivery("p2"))
    got = await receiver.result("p2", timeout=0.01)
    assert got is not None
    assert got.status == areplicate.Status.SUCCEEDED


async def test_a_bad_signature_is_a_400_and_ends_nothing() -> None:
    receiver = Receiver(URL, secret=SECRET)
    headers, body = delivery("p3")
    reply = await receiver.handle(headers, body.replace(b"succeeded", b"failed"))
    assert reply.status == 400
    assert not reply.ok
    assert await receiver.result("p3", timeout=0.01) is None
    assert receiver.rejected == 1


async def test_a_repeated_webhook_id_counts_once() -> None:
    seen: list[str] = []
    receiver = Receiver(URL, secret=SECRET, on_unclaimed=lambda p: seen.append(p.id))
    headers, body = delivery("p4", msg_id="msg_same")
    assert (await receiver.handle(headers, body)).status == 200
    assert (await receiver.handle(headers, body)) == Reply(200, "duplicate")
    assert seen == ["p4"]
    assert (receiver.deliveries, receiver.duplicates) == (1, 1)


async def test_a_non_terminal_delivery_does_not_end_the_wait() -> None:
    receiver = Receiver(URL, secret=SECRET, events=["start", "completed"])
    await receiver.handle(*delivery("p5", status="processing"))
    assert await receiver.result("p5", timeout=0.01) is None


async def test_unclaimed_deliveries_go_to_the_callback_and_a_failing_one_asks_for_a_retry() -> None:
    calls: list[str] = []

    async def store(prediction: areplicate.Prediction) -> None:
        calls.append(prediction.id)
        if len(calls) == 1:
            raise OSError("database down")

    receiver = Receiver(URL, secret=SECRET, on_unclaimed=store)
    headers, body = delivery("p6")
    assert (await receiver.handle(headers, body)).status == 500
    # Replicate retries the same delivery (same webhook-id): this time it is taken.
    assert (await receiver.handle(headers, body)).status == 200
    assert calls == ["p6", "p6"]


async def test_the_secret_is_fetched_once_when_not_given() -> None:
    fetched = 0

    async def fetch() -> str:
        nonlocal fetched
        fetched += 1
        await asyncio.sleep(0)
        return SECRET

    receiver = Receiver(URL)
    receiver.bind(fetch)
    replies = await asyncio.gather(*(receiver.handle(*delivery(f"p{i}")) for i in range(5)))
    assert {r.status for r in replies} == {200}
    assert fetched == 1


async def test_without_any_secret_it_says_how_to_give_one() -> None:
    with pytest.raises(areplicate.ReplicateError, match="secret="):
        await Receiver(URL).handle(*delivery("p7"))


@pytest.mark.parametrize(
    ("url", "events"),
    [("http://app.example/hook", ["completed"]), (URL, ["finished"]), (URL, [])],
)
def test_bad_arguments_are_refused_before_anything_runs(url: str, events: Any) -> None:
    with pytest.raises(ValueError):
        Receiver(url, events=events)


def test_its_repr_shows_counts_not_the_secret() -> None:
    receiver = Receiver(URL, secret=SECRET)
    assert SECRET not in repr(receiver)
    assert URL in repr(receiver)
