"""The HTTP session against a misbehaving server: reads ask again after a glitch, no answer holds a
request past the client's timeout, and no body is read into memory without a bound."""

from __future__ import annotations

import json
import time

import anyio
import pytest

import areplicate
from areplicate._session import MAX_BODY, MAX_ERROR_BODY
from tests.hostile.server import (
    TOKEN,
    Handler,
    Hostile,
    created,
    deep_json,
    delayed,
    endless,
    json_response,
    prediction_body,
    problem,
    raw,
    sequence,
    stalled_stream,
    trickle,
    truncated,
)

ONE = "/v1/predictions/p1"
CREATE = "/v1/models/acme/m/predictions"
GOOD = json_response(prediction_body("p1"))
BODY = json.dumps(prediction_body("p1")).encode()

GLITCHES: dict[str, Handler] = {
    "500": problem(500, "Internal Server Error"),
    "502 page": raw(b"<html>bad gateway</html>", status=502, content_type="text/html"),
    "html 200": raw(b"<html>maintenance</html>", content_type="text/html"),
    "truncated 200": truncated(BODY, keep=30),
    "deep 200": raw(deep_json(100_000)),
    "deep 500": raw(deep_json(100_000), status=500),
}


@pytest.mark.parametrize("glitch", list(GLITCHES), ids=str)
async def test_a_read_asks_again_after_one_bad_answer(
    hostile: Hostile, client: areplicate.Client, glitch: str
) -> None:
    hostile.on("GET", ONE, sequence(GLITCHES[glitch], GOOD))
    with anyio.fail_after(20):
        prediction = await client.predictions.get("p1")
    assert prediction.status == "succeeded"
    assert hostile.count("GET", ONE) == 2


async def test_a_cancel_asks_again_after_a_500(hostile: Hostile, client: areplicate.Client) -> None:
    path = f"{ONE}/cancel"
    hostile.on("POST", path, sequence(problem(500, "Boom"), GOOD))
    with anyio.fail_after(20):
        await client.predictions.cancel("p1")
    assert hostile.count("POST", path) == 2


async def test_a_read_that_stays_broken_gives_up_with_the_real_error(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", ONE, raw(b"<html>maintenance</html>", content_type="text/html"))
    with anyio.fail_after(20), pytest.raises(areplicate.UnexpectedResponseError) as info:
        await client.predictions.get("p1")
    assert info.value.status == 200
    assert "not JSON" in str(info.value)
    assert info.value.maybe_created is False, "a read creates nothing"
    assert hostile.count("GET", ONE) == 4  # the client fixture's attempts


async def test_a_trickled_answer_is_cut_off_at_the_client_timeout(hostile: Hostile) -> None:
    hostile.on("GET", ONE, trickle(BODY, every=0.2))  # ~50 s for the whole body
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=1, max_retries=0
    ) as client:
        started = time.monotonic()
        with anyio.fail_after(20), pytest.raises(areplicate.APITimeoutError) as info:
            await client.predictions.get("p1")
    assert time.monotonic() - started < 10
    assert info.value.sent is True
    assert "within 1 s" in str(info.value)


async def test_a_trickled_create_answer_is_cut_off_and_may_have_happened(
    hostile: Hostile,
) -> None:
    hostile.on("POST", CREATE, trickle(BODY, every=0.2, status=201))
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=1
    ) as client:
        with anyio.fail_after(20), pytest.raises(areplicate.APITimeoutError) as info:
            await client.predictions.create("acme/m", input={})
    assert info.value.maybe_created is True
    assert hostile.count("POST", CREATE) == 1


async def test_prefer_wait_gets_a_read_window_longer_than_the_wait(hostile: Hostile) -> None:
    # The API holds a `Prefer: wait` create up to the wait: longer than the client's timeout.
    hostile.on("POST", CREATE, delayed(1.5, created(prediction_body("p1"))))
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=1
    ) as client:
        with anyio.fail_after(20):
            prediction = await client.predictions.create("acme/m", input={}, hold=2)
    assert prediction.id == "p1"
    (seen,) = hostile.requests
    assert seen.headers["Prefer"] == "wait=2"


async def test_a_body_without_end_is_refused_at_the_cap(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", ONE, endless())
    with anyio.fail_after(60), pytest.raises(areplicate.UnexpectedResponseError) as info:
        await client._session.request("GET", "predictions/p1", headers={"Accept": "text/html"})
    assert info.value.title == "Response too large"
    assert f"{MAX_BODY // 2**20} MiB" in str(info.value)


async def test_a_huge_announced_body_is_refused_without_reading_it(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", ONE, trickle(b"x" * (MAX_BODY + 1), every=3600, chunk=MAX_BODY + 1))
    with anyio.fail_after(20), pytest.raises(areplicate.UnexpectedResponseError) as info:
        await client.predictions.get("p1")
    assert str(MAX_BODY + 1) in str(info.value)


async def test_a_huge_error_page_is_cut_and_still_a_server_error(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", ONE, sequence(endless(b"<p>oops</p>" * 1000, status=500), GOOD))
    with anyio.fail_after(30):
        prediction = await client.predictions.get("p1")
    assert prediction.id == "p1"
    assert hostile.count("GET", ONE) == 2
    assert MAX_ERROR_BODY < MAX_BODY


async def test_a_stream_waits_no_longer_than_the_client_timeout(hostile: Hostile) -> None:
    hostile.on("GET", "/v1/stream", stalled_stream(b"event: output\ndata: hi\n\n"))
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=0.5
    ) as client:
        started = time.monotonic()
        with anyio.fail_after(20), pytest.raises(areplicate.APITimeoutError):
            await _drain(client, f"{hostile.url}/stream")
    assert time.monotonic() - started < 10


async def _drain(client: areplicate.Client, url: str) -> None:
    async with client._session.stream(url) as resp:
        async for _line in resp.content:
            pass


async def test_waiting_for_a_pooled_connection_does_not_count_against_the_timeout(
    hostile: Hostile,
) -> None:
    # One connection, three creates each answered after 0.6 s: the last waits 1.2 s for the
    # connection, longer than the 1 s timeout, yet its own answer comes in time.
    hostile.on("POST", CREATE, delayed(0.6, created(prediction_body("p1"))))
    async with areplicate.Client(
        api_token=TOKEN,
        base_url=hostile.url,
        rate_limits=None,
        request_timeout=1,
        max_connections=1,
    ) as client:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(client.predictions.create, "acme/m", {})
    assert hostile.count("POST", CREATE) == 3


async def test_a_response_without_a_date_leaves_the_api_clock_known(
    hostile: Hostile, client: areplicate.Client
) -> None:
    # The reaper reads the API's clock from the latest Date: a response without one (an empty
    # header here) must not make it unknown, which would widen every orphan window to ±120 s.
    hostile.on("GET", "/v1/account", json_response({"type": "user", "username": "u", "name": "u"}))
    hostile.on(
        "GET",
        "/v1/hardware",
        json_response([{"sku": "cpu", "name": "CPU"}], headers={"Date": ""}),
    )
    await client.account.get()
    known = client._session.clock_offset()
    assert known is not None
    assert [h.sku async for h in client.hardware.list()] == ["cpu"]
    assert client._session.clock_offset() == known
