"""The orphan reaper against scripted listings the fake cannot play: a create of ours made during
the listing, a stranger's made during our 429 pause, a create given up while it waited for a
connection, a deployment's prediction. None of them is taken for an orphan of ours."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

import areplicate
from tests.hostile.server import Handler, Hostile, json_response, prediction_body

CREATE = "/v1/models/acme/m/predictions"
LIST = "/v1/predictions"


def stamp(when: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(when if when is not None else time.time(), dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def until(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    with anyio.fail_after(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def script(
    hostile: Hostile, client: areplicate.Client, create: Handler, listing: Handler, stranger: str
) -> None:
    """Serve ``create`` and ``listing``, answer a cancel of ``stranger``, and give the client the
    API's Date (its clock skew) with one response before the test's create."""
    hostile.on("POST", CREATE, create)
    hostile.on("GET", LIST, listing)
    hostile.on(
        "POST",
        f"/v1/predictions/{stranger}/cancel",
        json_response(prediction_body(stranger, "canceled")),
    )
    hostile.on("GET", "/v1/account", json_response({"type": "user", "username": "u", "name": "u"}))
    await client.account.get()


async def abandoned_and_judged(
    hostile: Hostile, client: areplicate.Client, ours: asyncio.Task[Any], creates: int
) -> None:
    """Give up ``ours`` once ``creates`` creates reached the server, then wait for the reaper's
    listing and for the client's clean-up to end."""
    await until(lambda: hostile.count("POST", CREATE) >= creates, "our create is on the wire")
    ours.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ours
    await until(lambda: hostile.count("GET", LIST) >= 1, "the reaper lists")
    with anyio.fail_after(30):
        while client._session._cleanup:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_create_of_ours_registered_during_the_listing_is_never_taken_for_an_orphan(
    hostile: Hostile, client: areplicate.Client
) -> None:
    """Create A is given up on the wire and the API never makes it. After the reaper's pause, and
    after it checked that no create with A's input is on the wire, the same client sends an
    identical create B: the API registers B's prediction before it serves the reaper's listing, and
    B's answer reaches the client after the listing does. So the listing shows one unknown fit for
    one orphan, inside A's window (its LATE_GRACE + the Date slack). B is still awaiting its
    answer, so the round waits for its id instead of judging: B is never cancelled."""
    listed, finished = asyncio.Event(), asyncio.Event()
    made: list[dict[str, object]] = []
    creates = 0

    async def create(request: web.Request) -> web.StreamResponse:
        nonlocal creates
        creates += 1
        if creates == 1:  # A: read, never acted on
            await finished.wait()
            return web.Response(status=500)
        made.append(
            prediction_body("rv1-b", "processing", input={"prompt": "x"}, created_at=stamp())
        )
        await listed.wait()  # B's answer is sent once the reaper has its listing
        await asyncio.sleep(0.2)
        return web.json_response(made[0], status=201)

    async def listing(request: web.Request) -> web.StreamResponse:
        await until(lambda: bool(made), "B was registered")
        listed.set()
        return web.json_response({"results": made, "next": None, "previous": None})

    hostile.on("POST", CREATE, create)
    hostile.on("GET", LIST, listing)
    hostile.on(
        "POST", "/v1/predictions/rv1-b/cancel", json_response(prediction_body("rv1-b", "canceled"))
    )
    hostile.on("GET", "/v1/account", json_response({"type": "user", "username": "u", "name": "u"}))
    await client.account.get()  # the API's Date

    a = asyncio.create_task(client.predictions.create("acme/m", {"prompt": "x"}))
    await until(lambda: hostile.count("POST", CREATE) >= 1, "A is on the wire")
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    await until(lambda: hostile.count("GET", LIST) >= 1, "the reaper lists")
    with anyio.fail_after(10):
        b = await client.predictions.create("acme/m", {"prompt": "x"})
    assert b.id == "rv1-b"
    with anyio.fail_after(30):
        while client._session._cleanup:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finished.set()
    assert hostile.count("POST", "/v1/predictions/rv1-b/cancel") == 0  # B is ours and wanted


async def test_a_strangers_prediction_made_during_our_429_pause_is_never_taken_for_ours(
    hostile: Hostile, client: areplicate.Client
) -> None:
    """Our create is refused with a 429 (Retry-After: 3): provably not processed, so nothing of
    ours exists while the client waits. Meanwhile another process sends the same input (a retry
    of the job, say) and the API makes S, a second after our 429. Our retry then gets a connection
    and its caller gives up before the API acts on it. The only create of ours the API could have
    made was on the wire from the retry on, and the orphan's window opens there (not when the
    create was registered, before the 429 and its pause): S, made before it, is never cancelled."""
    first_post: list[float] = []
    finished = asyncio.Event()

    async def create(request: web.Request) -> web.StreamResponse:
        if not first_post:
            first_post.append(time.time())
            body = {"title": "Too Many Requests", "detail": "slow down", "status": 429}
            return web.json_response(
                body, status=429, headers={"Retry-After": "3"}, content_type="application/json"
            )
        await finished.wait()  # the retry: read, never acted on
        return web.Response(status=500)

    async def listing(request: web.Request) -> web.StreamResponse:
        theirs = prediction_body(
            "rv2-s", "processing", input={"prompt": "x"}, created_at=stamp(first_post[0] + 1.0)
        )
        return web.json_response({"results": [theirs], "next": None, "previous": None})

    await script(hostile, client, create, listing, "rv2-s")

    ours = asyncio.create_task(client.predictions.create("acme/m", {"prompt": "x"}))
    await abandoned_and_judged(hostile, client, ours, creates=2)
    finished.set()
    assert hostile.count("POST", "/v1/predictions/rv2-s/cancel") == 0  # S is a stranger's


async def test_a_create_close_gave_up_while_it_waited_for_a_connection_is_never_sent_after(
    hostile: Hostile,
) -> None:
    """close() gives up every call in flight. A create still waiting for a connection from the
    pool has no "sent" mark, so it leaves no orphan, which is right only if it is never sent: when
    the create ahead of it answers and frees the connection, the given-up create raises instead
    of going out, so nothing of it runs on with nobody to cancel it."""
    release, finished = asyncio.Event(), asyncio.Event()

    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        pid = "rv3-a" if body["input"]["prompt"] == "a" else "rv3-c"
        if pid == "rv3-a":
            await release.wait()
        made = prediction_body(pid, "processing", input=body["input"], created_at=stamp())
        if pid == "rv3-c":
            await finished.wait()  # made; the answer is still on its way when the pool closes
        return web.json_response(made, status=201)

    hostile.on("POST", CREATE, create)
    for pid in ("rv3-a", "rv3-c"):
        path = f"/v1/predictions/{pid}/cancel"
        hostile.on("POST", path, json_response(prediction_body(pid, "canceled")))
    hostile.on("GET", LIST, json_response({"results": [], "next": None, "previous": None}))
    client = areplicate.Client(
        api_token="r8_review_pool", base_url=hostile.url, rate_limits=None, max_connections=1
    )
    a = asyncio.create_task(client.predictions.create("acme/m", {"prompt": "a"}))
    await until(lambda: hostile.count("POST", CREATE) >= 1, "A holds the only connection")
    c = asyncio.create_task(client.predictions.create("acme/m", {"prompt": "c"}))
    connector = client._session._http.connector  # type: ignore[union-attr]
    await until(lambda: any(connector._waiters.values()), "C waits for a connection")
    closing = asyncio.create_task(client.aclose())
    await until(lambda: client._session._closing, "close() began")
    release.set()
    with anyio.fail_after(30):
        await closing
        await asyncio.gather(a, c, return_exceptions=True)
    finished.set()
    sent_c = sum(1 for r in hostile.requests if r.method == "POST" and b'"c"' in r.body)
    cancelled_c = hostile.count("POST", "/v1/predictions/rv3-c/cancel")
    assert sent_c == 0 or cancelled_c == 1, (sent_c, cancelled_c)


async def test_an_abandoned_model_create_never_claims_a_strangers_deployment_prediction(
    hostile: Hostile, client: areplicate.Client
) -> None:
    """Our create on the model's own route is given up and the API never makes it. Meanwhile
    another process runs the same input through a deployment of that model: its prediction says
    ``deployment: acme/prod``. A create on the model route cannot have made a deployment's
    prediction (nor the reverse), so the stranger's prediction never fits and is never cancelled."""
    finished = asyncio.Event()
    posted: list[float] = []

    async def create(request: web.Request) -> web.StreamResponse:
        posted.append(time.time())
        await finished.wait()  # read, never acted on
        return web.Response(status=500)

    async def listing(request: web.Request) -> web.StreamResponse:
        theirs = prediction_body(
            "rv4-d",
            "processing",
            input={"prompt": "x"},
            created_at=stamp(posted[0] + 0.1),
            deployment="acme/prod",
        )
        return web.json_response({"results": [theirs], "next": None, "previous": None})

    await script(hostile, client, create, listing, "rv4-d")

    ours = asyncio.create_task(client.predictions.create("acme/m", {"prompt": "x"}))
    await abandoned_and_judged(hostile, client, ours, creates=1)
    finished.set()
    assert hostile.count("POST", "/v1/predictions/rv4-d/cancel") == 0  # a deployment's
