"""A create whose answer cannot be read says the prediction may exist; one that provably was not
processed says it does not; neither is ever sent twice."""

from __future__ import annotations

import json
import socket

import anyio
import pytest

import areplicate
from areplicate.testing import FakeRateLimits, FakeReplicate
from tests.hostile.server import (
    TOKEN,
    Handler,
    Hostile,
    created,
    deep_json,
    drop,
    json_response,
    prediction_body,
    problem,
    raw,
    sequence,
    truncated,
)

CREATE = "/v1/models/acme/m/predictions"
TRAIN = "/v1/models/acme/m/versions/" + "a" * 64 + "/trainings"
BODY = json.dumps(prediction_body("p1", "starting")).encode()

UNREADABLE_ANSWERS: dict[str, Handler] = {
    "html 201": created(b"<html><title>Created</title></html>"),
    "empty 201": created(b""),
    "array 201": created([1, 2]),
    "201 without id": created({"status": "starting"}),
    "201 with empty id": created({"id": "", "status": "starting"}),
    "truncated 201": truncated(BODY, keep=20, status=201),
    "deep 201": created(deep_json(100_000)),
    "500": problem(500, "Internal Server Error"),
    "502 page": raw(b"<html>bad gateway</html>", status=502, content_type="text/html"),
    "dropped": drop(),
    "redirect": raw(b"", status=307, headers={"Location": "https://elsewhere.example/v1/p"}),
}


@pytest.mark.parametrize("answer", list(UNREADABLE_ANSWERS), ids=str)
async def test_a_create_that_may_have_happened_says_so(
    hostile: Hostile, client: areplicate.Client, answer: str
) -> None:
    hostile.on("POST", CREATE, UNREADABLE_ANSWERS[answer])
    with anyio.fail_after(20), pytest.raises(areplicate.ReplicateError) as info:
        await client.predictions.create("acme/m", input={"prompt": "hi"})
    assert info.value.maybe_created is True
    assert "predictions.find" in str(info.value)
    assert not isinstance(info.value, RecursionError)
    assert hostile.count("POST", CREATE) == 1, "never sent twice"


@pytest.mark.parametrize(
    ("answer", "status"),
    [("array 201", 201), ("201 without id", 201), ("html 201", 201), ("deep 201", 201)],
)
async def test_a_creates_unreadable_answer_names_its_real_status(
    hostile: Hostile, client: areplicate.Client, answer: str, status: int
) -> None:
    hostile.on("POST", CREATE, UNREADABLE_ANSWERS[answer])
    with anyio.fail_after(20), pytest.raises(areplicate.UnexpectedResponseError) as info:
        await client.predictions.create("acme/m", input={})
    assert info.value.status == status
    assert str(info.value).startswith(f"HTTP {status}")


async def test_a_training_create_that_may_have_happened_says_so(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("POST", TRAIN, created({"status": "starting"}))
    with anyio.fail_after(20), pytest.raises(areplicate.UnexpectedResponseError) as info:
        await client.trainings.create(
            "acme/m:" + "a" * 64, destination="acme/tuned", input={"steps": 1}
        )
    assert info.value.maybe_created is True
    assert (info.value.status, hostile.count("POST", TRAIN)) == (201, 1)


@pytest.mark.parametrize(
    "answer",
    [
        problem(401, "Unauthenticated"),
        problem(402, "Payment Required"),
        problem(404, "Not found"),
        problem(422, "Invalid input"),
    ],
    ids=["401", "402", "404", "422"],
)
async def test_a_refused_create_did_not_happen(
    hostile: Hostile, client: areplicate.Client, answer: Handler
) -> None:
    hostile.on("POST", CREATE, answer)
    with anyio.fail_after(20), pytest.raises(areplicate.APIError) as info:
        await client.predictions.create("acme/m", input={})
    assert info.value.maybe_created is False
    assert "predictions.find" not in str(info.value)
    assert hostile.count("POST", CREATE) == 1


async def test_a_create_that_never_connected_did_not_happen() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with areplicate.Client(
        api_token=TOKEN, base_url=f"http://127.0.0.1:{port}/v1", rate_limits=None, max_retries=1
    ) as client:
        with anyio.fail_after(20), pytest.raises(areplicate.APIConnectionError) as info:
            await client.predictions.create("acme/m", input={})
    assert (info.value.sent, info.value.maybe_created) == (False, False)


async def test_429s_before_a_create_succeeds_make_exactly_one_prediction(
    hostile: Hostile, client: areplicate.Client
) -> None:
    throttled = problem(429, "Too Many Requests", "Request was throttled.", **{"Retry-After": "0"})
    # More 429s than the client has retries: a 429 is not a failure, it only slows the work.
    answers = [throttled] * 8 + [created(prediction_body("p1", "starting"))]
    hostile.on("POST", CREATE, sequence(*answers))
    with anyio.fail_after(30):
        prediction = await client.predictions.create("acme/m", input={})
    assert prediction.id == "p1"
    assert hostile.count("POST", CREATE) == 9


async def test_429s_on_a_read_are_waited_out(hostile: Hostile, client: areplicate.Client) -> None:
    throttled = problem(429, "Too Many Requests", **{"Retry-After": "0.05"})
    hostile.on(
        "GET",
        "/v1/predictions/p1",
        sequence(*[throttled] * 8, json_response(prediction_body("p1"))),
    )
    with anyio.fail_after(30):
        prediction = await client.predictions.get("p1")
    assert prediction.status == "succeeded"
    assert hostile.count("GET", "/v1/predictions/p1") == 9


async def echo(n: int = 0) -> int:
    return n


@pytest.mark.parametrize("scale", [10.0])
async def test_a_rate_limited_account_finishes_every_item(scale: float) -> None:
    """An account allowed 120 creates a minute (time sped up ``scale`` times: the fake allows
    ``120 * scale`` and a small burst) runs 60 items at concurrency 20: every item succeeds, even
    with a single retry allowed (429s do not use retries up)."""
    limits = FakeRateLimits(creates_per_minute=120 * scale, creates_burst=10)
    fake = FakeReplicate(rate_limits=limits)
    fake.add_model("acme/echo", echo)
    async with (
        fake.serve() as url,
        areplicate.Client(api_token=TOKEN, base_url=url, rate_limits=None, max_retries=1) as client,
    ):
        with anyio.fail_after(120):
            results = await areplicate.gather_predictions(
                client,
                "acme/echo",
                [{"n": i} for i in range(60)],
                concurrency=20,
                return_exceptions=True,
            )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert [r.output for r in results if isinstance(r, areplicate.Prediction)] == list(range(60))
    assert fake.status_counts[201] == 60, "exactly one prediction per item"
    assert fake.status_counts[429] > 0, "the limit was hit (else the test shows nothing)"
