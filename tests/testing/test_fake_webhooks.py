"""Webhooks (docs/api-notes.md#webhooks): signed so an independent Standard Webhooks
implementation verifies them, filtered, throttled, and only the final one retried."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import standardwebhooks
from aiohttp import web

from areplicate.testing import FakeReplicate, InstantClock, log


@attrs.define
class Hit:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records deliveries and answers ``statuses`` in turn."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.statuses: list[int] = []
        self.arrived = asyncio.Condition()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        hit = Hit(dict(request.headers), await request.read())
        status = self.statuses.pop(0) if self.statuses else 200
        async with self.arrived:
            self.hits.append(hit)
            self.arrived.notify_all()
        return web.Response(status=status)

    async def wait_for(self, count: int) -> list[Hit]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.hits) >= count), 5)
        return self.hits


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


@pytest.fixture
def fast_fake(make_fake: Callable[..., FakeReplicate]) -> FakeReplicate:
    """The fake on a test clock: the 500 ms throttle and the retry backoff take no wall time."""
    return make_fake(clock=InstantClock(), webhook_backoff=(0.5, 1.0, 2.0))


async def create(
    http: Any, base_url: str, model: str, receiver: Receiver, events: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": {}, "webhook": receiver.url}
    if events is not None:
        body["webhook_events_filter"] = events
    reply = await http.post(f"{base_url}/models/{model}/predictions", json=body)
    assert reply.status == 201, reply.body
    return reply.json  # type: ignore[no-any-return]


async def test_signed_completed_webhook_verifies_independently(
    fast_fake: FakeReplicate, http: Any, receiver: Receiver
) -> None:
    async def upper() -> str:
        return "DONE"

    fast_fake.add_model("acme/upper", upper)
    async with fast_fake.serve() as base_url:
        created = await create(http, base_url, "acme/upper", receiver)
        await fast_fake.wait_idle()
        [hit] = receiver.hits
        secret = (await http.get(f"{base_url}/webhooks/default/secret")).json["key"]
    assert secret == fast_fake.webhook_secret
    assert secret.startswith("whsec_")
    assert hit.json == fast_fake.prediction(created["id"])
    assert hit.json["status"] == "succeeded"
    assert hit.json["webhook"] == receiver.url
    assert hit.headers["webhook-id"].startswith("msg_")
    assert hit.headers["Content-Type"] == "application/json"
    verified = standardwebhooks.Webhook(secret).verify(hit.body, hit.headers)
    assert verified["id"] == created["id"]
    tampered = hit.body.replace(b'"DONE"', b'"EVIL"')
    assert tampered != hit.body
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, hit.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 32).verify(hit.body, hit.headers)


async def test_events_filter_start_and_completed(
    fast_fake: FakeReplicate, http: Any, receiver: Receiver
) -> None:
    async def talk() -> AsyncIterator[str]:
        log("a log line")
        yield "x"

    fast_fake.add_model("acme/talk", talk)
    async with fast_fake.serve() as base_url:
        created = await create(http, base_url, "acme/talk", receiver, ["start", "completed"])
        await fast_fake.wait_idle()
        hits = receiver.hits
    assert [h.json["status"] for h in hits] == ["processing", "succeeded"]
    assert hits[1].json["webhook_events_filter"] == ["start", "completed"]
    assert [d.event for d in fast_fake.webhook_deliveries] == ["start", "completed"]
    assert all(d.prediction_id == created["id"] for d in fast_fake.webhook_deliveries)


async def test_default_filter_sends_outputs_and_completion_throttled(
    fast_fake: FakeReplicate, http: Any, receiver: Receiver
) -> None:
    async def burst() -> AsyncIterator[str]:
        log("not sent: logs are not in the default filter")
        for word in ("a", "b", "c", "d"):
            yield word

    fast_fake.add_model("acme/burst", burst)
    async with fast_fake.serve() as base_url:
        await create(http, base_url, "acme/burst", receiver)
        await fast_fake.wait_idle()
    events = [d.event for d in fast_fake.webhook_deliveries]
    assert events == ["output", "completed"], "outputs within 500 ms collapse into the final one"
    assert [h.json["output"] for h in receiver.hits] == [["a"], ["a", "b", "c", "d"]]


async def test_a_throttled_output_is_sent_late_with_the_latest_state(
    fast_fake: FakeReplicate, http: Any, receiver: Receiver
) -> None:
    async def paced() -> AsyncIterator[str]:
        yield "a"
        await receiver.wait_for(1)
        yield "b"
        log("logged")
        yield "c"
        await receiver.wait_for(2)  # the delayed delivery goes out before completion

    fast_fake.add_model("acme/paced", paced)
    async with fast_fake.serve() as base_url:
        await create(http, base_url, "acme/paced", receiver, ["output", "logs", "completed"])
        await fast_fake.wait_idle()
        hits = receiver.hits
    assert [(h.json["status"], h.json["output"]) for h in hits] == [
        ("processing", ["a"]),
        ("processing", ["a", "b", "c"]),
        ("succeeded", ["a", "b", "c"]),
    ]
    assert hits[1].json["logs"] == "logged\n"
    assert [d.event for d in fast_fake.webhook_deliveries] == ["output", "output", "completed"]


async def test_only_the_final_webhook_is_retried_with_the_same_id(
    fast_fake: FakeReplicate, http: Any, receiver: Receiver
) -> None:
    async def upper() -> str:
        return "X"

    fast_fake.add_model("acme/upper", upper)
    receiver.statuses = [500, 500, 503, 502]  # start fails once; completed fails three times
    async with fast_fake.serve() as base_url:
        await create(http, base_url, "acme/upper", receiver, ["start", "completed"])
        await fast_fake.wait_idle()
        hits = receiver.hits
    deliveries = fast_fake.webhook_deliveries
    assert [(d.event, d.attempt, d.status) for d in deliveries] == [
        ("start", 1, 500),
        ("completed", 1, 500),
        ("completed", 2, 503),
        ("completed", 3, 502),
        ("completed", 4, 200),
    ]
    final_ids = {h.headers["webhook-id"] for h in hits[1:]}
    assert len(final_ids) == 1
    assert hits[0].headers["webhook-id"] not in final_ids
    for hit in hits:
        standardwebhooks.Webhook(fast_fake.webhook_secret).verify(hit.body, hit.headers)


async def test_connection_errors_are_retried_then_given_up(
    fast_fake: FakeReplicate, http: Any
) -> None:
    async def upper() -> str:
        return "X"

    fast_fake.add_model("acme/upper", upper)
    nowhere = Receiver()
    nowhere.url = "http://127.0.0.1:9/hook"  # the discard port: connection refused
    async with fast_fake.serve() as base_url:
        await create(http, base_url, "acme/upper", nowhere)
        await fast_fake.wait_idle()
    assert [(d.attempt, d.status) for d in fast_fake.webhook_deliveries] == [
        (1, None),
        (2, None),
        (3, None),
        (4, None),
    ]
    assert all(d.error for d in fast_fake.webhook_deliveries)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhook": "not a url"}, "webhook"),
        (
            {"webhook": "https://example.com/h", "webhook_events_filter": ["finished"]},
            "webhook_events_filter.0",
        ),
        ({"webhook_events_filter": "completed"}, "webhook_events_filter"),
    ],
)
async def test_bad_webhook_fields_are_422(
    fake: FakeReplicate, base_url: str, http: Any, body: dict[str, Any], field: str
) -> None:
    async def upper() -> str:
        return "X"

    fake.add_model("acme/upper", upper)
    reply = await http.post(f"{base_url}/models/acme/upper/predictions", json={"input": {}, **body})
    assert reply.status == 422
    assert [f["field"] for f in reply.json["invalid_fields"]] == [field]
