"""The verbs and options of a create: ``client.with_options``, ``raise_for_status``, ``RunOptions``."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

import areplicate
from areplicate import Prediction, RunOptions, Status
from tests.hostile.server import (
    TOKEN,
    Hostile,
    created,
    delayed,
    json_response,
    prediction_body,
    problem,
)

PID = "p1"
GET = f"/v1/predictions/{PID}"
CREATE = "/v1/models/acme/m/predictions"


class TestWithOptions:
    async def test_a_view_and_its_client_share_one_pool_and_one_budget(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        ports: list[int] = []

        async def answer(request: web.Request) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            ports.append(peer[1])
            return web.json_response(prediction_body(PID))

        hostile.on("GET", GET, answer)
        view = client.with_options(request_timeout=7, max_retries=1)
        with anyio.fail_after(20):
            await client.predictions.get(PID)
            await view.predictions.get(PID)
            await client.predictions.get(PID)
            await view.predictions.get(PID)
        # One keep-alive connection carried all four: a second pool would have opened its own.
        assert len(ports) == 4
        assert len(set(ports)) == 1
        assert view._session._client() is client._session._client()
        assert view._session.budget is client._session.budget
        assert view._session.ledger is client._session.ledger
        assert view.config.request_timeout == 7
        assert view.config.max_retries == 1
        assert client.config.request_timeout == 5  # the client itself is unchanged

    async def test_a_views_request_timeout_applies_to_its_requests_only(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        hostile.on("GET", GET, delayed(1.0, json_response(prediction_body(PID))))
        hurried = client.with_options(request_timeout=0.2, max_retries=0)
        with anyio.fail_after(20):
            with pytest.raises(areplicate.APITimeoutError, match=r"0\.2 s"):
                await hurried.predictions.get(PID)
            assert (await client.predictions.get(PID)).id == PID

    async def test_a_views_max_retries_applies_to_its_requests_only(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        hostile.on("GET", GET, problem(503, "Service Unavailable"))
        with anyio.fail_after(20):
            with pytest.raises(areplicate.ServerError):
                await client.with_options(max_retries=0).predictions.get(PID)
            assert hostile.count("GET", GET) == 1
            with pytest.raises(areplicate.ServerError):
                await client.predictions.get(PID)
        assert hostile.count("GET", GET) == 1 + 4  # the fixture's client makes 4 attempts

    async def test_closing_a_view_leaves_the_client_open_and_a_closed_client_closes_its_views(
        self, hostile: Hostile
    ) -> None:
        hostile.on("GET", GET, json_response(prediction_body(PID)))
        parent = areplicate.Client(api_token=TOKEN, base_url=hostile.url, rate_limits=None)
        with anyio.fail_after(20):
            async with parent.with_options(request_timeout=9) as view:
                await view.predictions.get(PID)
            assert "open" in repr(parent)
            assert (await parent.predictions.get(PID)).id == PID
            await parent.aclose()
            with pytest.raises(RuntimeError, match="closed"):
                await view.predictions.get(PID)

    def test_bad_settings_are_refused_when_the_view_is_made(self) -> None:
        client = areplicate.Client(api_token=TOKEN, base_url="http://127.0.0.1:9/v1")
        with pytest.raises(ValueError, match="request_timeout"):
            client.with_options(request_timeout=0)
        with pytest.raises(ValueError, match="max_retries"):
            client.with_options(max_retries=-1)


class TestRaiseForStatus:
    def test_a_succeeded_prediction_is_returned_as_it_is(self) -> None:
        prediction = Prediction(id="p", status=Status.SUCCEEDED, output=[1])
        assert prediction.raise_for_status() is prediction

    def test_a_failed_one_raises_with_the_models_error(self) -> None:
        prediction = Prediction(id="p", status=Status.FAILED, error="CUDA out of memory")
        with pytest.raises(areplicate.PredictionFailedError, match="CUDA out of memory") as info:
            prediction.raise_for_status()
        assert info.value.prediction is prediction
        assert not isinstance(info.value, areplicate.PredictionCanceledError)

    @pytest.mark.parametrize("status", [Status.CANCELED, Status.ABORTED])
    def test_a_canceled_or_aborted_one_raises_canceled(self, status: Status) -> None:
        with pytest.raises(areplicate.PredictionCanceledError):
            Prediction(id="p", status=status).raise_for_status()

    def test_one_still_running_is_not_called_failed(self) -> None:
        with pytest.raises(ValueError, match="still processing"):
            Prediction(id="p", status=Status.PROCESSING).raise_for_status()


class TestRunOptions:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"hold": 61}, "hold must be"),
            ({"hold": 0}, "hold must be"),
            ({"timeout": -1}, "timeout must be"),
            ({"timeout": "soon"}, "timeout must be"),
            ({"lifetime": "2s"}, "lifetime must be at least"),
            ({"webhook": "ftp://x"}, "webhook must be"),
            ({"webhook": "https://x.example", "webhook_events_filter": "start"}, "non-empty"),
            ({"webhook_events_filter": ["completed"]}, "without a webhook"),
        ],
    )
    def test_each_bad_option_gets_a_clear_error(
        self, options: dict[str, object], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            RunOptions(**options)  # type: ignore[arg-type]

    def test_it_is_frozen_and_its_filter_a_tuple(self) -> None:
        options = RunOptions(webhook="https://x.example", webhook_events_filter=["completed"])
        assert options.webhook_events_filter == ("completed",)
        assert options.hold_seconds == 60
        assert RunOptions(hold=False).hold_seconds is None
        with pytest.raises(AttributeError):
            options.hold = False  # type: ignore[misc]

    async def test_the_fan_out_checks_its_options_before_any_request(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        with pytest.raises(ValueError, match="hold must be"):
            areplicate.as_completed(client, "acme/m", [{}], hold=99)
        assert hostile.requests == []


async def test_a_views_creates_carry_the_clients_webhook_receiver(hostile: Hostile) -> None:
    from areplicate.webhooks import Receiver

    hostile.on("POST", "/v1/models/acme/m/predictions", created(prediction_body(PID, "starting")))
    receiver = Receiver("https://app.example/hooks/replicate")
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, webhooks=receiver
    ) as parent:
        view = parent.with_options(request_timeout=9)
        with anyio.fail_after(20):
            await view.predictions.create("acme/m", {})
        await view.aclose()  # a no-op: the parent and its receiver stay in service
        assert "open" in repr(parent)
    [sent] = [r for r in hostile.requests if r.method == "POST"]
    assert b'"webhook":"https://app.example/hooks/replicate"' in sent.body
