"""Errors that say which thing: the model of a create's 404, the timeout the caller gave, and no
empty prediction id when the time ran out during the create."""

from __future__ import annotations

import anyio
import pytest

import areplicate
from tests.hostile.server import Hostile, created, delayed, json_response, prediction_body, problem

PID = "p1"
GET = f"/v1/predictions/{PID}"
CREATE = "/v1/models/acme/m/predictions"


class TestErrorsThatSayWhichThing:
    async def test_a_404_on_create_names_the_model(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        hostile.on(
            "POST", CREATE, problem(404, "Not found", "The requested resource could not be found.")
        )
        with anyio.fail_after(20), pytest.raises(areplicate.NotFoundError) as info:
            await client.run("acme/m", {"x": 1})
        assert "model acme/m" in str(info.value)
        assert info.value.target == "model acme/m"

    async def test_a_404_on_a_deployment_create_names_the_deployment(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        hostile.on(
            "POST",
            "/v1/deployments/acme/dep/predictions",
            problem(404, "Not found", "The requested resource could not be found."),
        )
        with anyio.fail_after(20), pytest.raises(areplicate.NotFoundError) as info:
            await client.deployments.predictions.create("acme/dep", {})
        assert "deployment acme/dep" in str(info.value)

    async def test_a_404_on_a_poll_does_not_blame_the_model(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        hostile.on(
            "GET", GET, problem(404, "Not found", "The requested resource could not be found.")
        )
        with anyio.fail_after(20), pytest.raises(areplicate.NotFoundError) as info:
            await client.predictions.get(PID)
        assert info.value.target is None
        assert "model" not in str(info.value)

    async def test_a_timeout_reports_the_seconds_the_caller_gave(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        # The create takes a while to answer; the wait then runs out: 1.5 s is still what was asked.
        hostile.on("POST", CREATE, delayed(0.5, created(prediction_body(PID, "starting"))))
        hostile.on("GET", GET, json_response(prediction_body(PID, "processing")))
        hostile.on("POST", f"{GET}/cancel", json_response(prediction_body(PID, "canceled")))
        with anyio.fail_after(20), pytest.raises(areplicate.WaitTimeoutError) as info:
            await client.run("acme/m", {}, hold=False, timeout=1.5)
        assert info.value.timeout == 1.5
        assert f"prediction {PID} still processing after 1.5s" in str(info.value)

    async def test_a_timeout_during_the_create_names_no_empty_id(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        hostile.on("POST", CREATE, delayed(3.0, created(prediction_body(PID, "starting"))))
        hostile.on("GET", "/v1/predictions", json_response({"results": [], "next": None}))
        with anyio.fail_after(20), pytest.raises(areplicate.WaitTimeoutError) as info:
            await client.run("acme/m", {}, hold=False, timeout=0.5)
        message = str(info.value)
        assert "prediction  " not in message
        assert "0.5s" in message
        assert "create" in message


def test_a_named_404_keeps_its_name_through_pickle() -> None:
    import pickle

    error = areplicate.NotFoundError(404, "Not found", "The requested resource could not be found.")
    error.target = "model acme/m"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.target == "model acme/m"
    assert str(copy) == str(error)
    assert str(copy).startswith("model acme/m not found")
