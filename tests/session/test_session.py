"""The session layer against aioresponses: retries that never create twice, error mapping, and a
token that goes only to the API and shows up nowhere else."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import pytest
import stamina
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from stamina.instrumentation import LoggingOnRetryHook, RetryDetails, set_on_retry_hooks
from yarl import URL

import areplicate
import areplicate._session
from areplicate import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    Client,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)
from areplicate._session import Session

from .compat import mocked_aiohttp

TOKEN = "r8_Sup3rS3cretT0kenThatMustNeverLeak1234"
API = "https://api.replicate.com/v1"
PREDICTIONS = f"{API}/predictions"
ONE = f"{API}/predictions/gm3qorzdhgbfurvjtvhg6dckhu"
PREDICTION = {"id": "gm3qorzdhgbfurvjtvhg6dckhu", "status": "starting", "input": {"x": 1}}
THROTTLED = {"detail": "Request was throttled. Expected available in 1 second."}
INVALID_TOKEN = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}
CLOUDFLARE_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
MAX_RETRIES = 3


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(
        api_token=TOKEN, base_url=API, rate_limits=None, max_retries=MAX_RETRIES, environ={}
    ) as c:
        yield c


@pytest.fixture
def session(client: Client) -> Session:
    return client._session


@pytest.fixture
def mock() -> Iterator[aioresponses]:
    with mocked_aiohttp() as m:
        yield m


@pytest.fixture
def retries() -> list[RetryDetails]:
    """Every retry stamina schedules (conftest restores the hooks)."""
    seen: list[RetryDetails] = []
    set_on_retry_hooks([seen.append])
    return seen


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record asyncio.sleep delays instead of sleeping (only for tests without a 429 pause)."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        recorded.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return recorded


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


def refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("api.replicate.com", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


class TestRateLimits:
    @pytest.mark.parametrize("create", [False, True], ids=["get", "create"])
    async def test_429_with_retry_after_is_waited_out_then_retried(
        self,
        session: Session,
        mock: aioresponses,
        retries: list[RetryDetails],
        create: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        sent_at: list[float] = []

        def record(url: URL, **kwargs: Any) -> None:
            sent_at.append(loop.time())

        method = "POST" if create else "GET"
        url = PREDICTIONS if create else ONE
        mock.add(
            url,
            method,
            status=429,
            headers={"Retry-After": "0.2"},
            payload=THROTTLED,
            callback=record,
        )
        mock.add(url, method, status=201, payload=PREDICTION, callback=record)

        response = await session.request(method, url, json_body={"input": {}}, create=create)

        assert response.status == 201
        assert response.json() == PREDICTION
        assert len(calls(mock, method, url)) == 2
        assert sent_at[1] - sent_at[0] >= 0.2
        assert retries == [], "a 429 is asked again without using up a retry"

    async def test_retry_after_in_the_body(self, session: Session, mock: aioresponses) -> None:
        loop = asyncio.get_running_loop()
        body = {"detail": "Request was throttled.", "status": 429, "retry_after": 0.1}
        mock.get(ONE, status=429, payload=body)
        mock.get(ONE, payload=PREDICTION)
        started = loop.time()
        assert (await session.request("GET", ONE)).status == 200
        assert loop.time() - started >= 0.1

    async def test_a_429_slows_every_request_of_the_client(
        self, session: Session, mock: aioresponses
    ) -> None:
        loop = asyncio.get_running_loop()
        other = f"{API}/predictions/other"
        mock.get(ONE, status=429, headers={"Retry-After": "0.2"}, payload=THROTTLED)
        mock.get(ONE, payload=PREDICTION)
        mock.get(other, payload=PREDICTION)

        async def later() -> float:
            await asyncio.sleep(0.05)  # after the 429 has arrived
            await session.request("GET", other)
            return loop.time()

        started = loop.time()
        _, other_done = await asyncio.gather(session.request("GET", ONE), later())
        assert other_done - started >= 0.2

    @pytest.mark.parametrize("create", [False, True], ids=["get", "create"])
    async def test_429s_never_use_up_the_retries(
        self, session: Session, mock: aioresponses, create: bool
    ) -> None:
        method = "POST" if create else "GET"
        url = PREDICTIONS if create else ONE
        for _ in range(MAX_RETRIES * 3):
            mock.add(url, method, status=429, headers={"Retry-After": "0"}, payload=THROTTLED)
        mock.add(url, method, status=201, payload=PREDICTION)
        with anyio.fail_after(30):
            response = await session.request(method, url, json_body={}, create=create)
        assert response.json() == PREDICTION
        assert len(calls(mock, method, url)) == MAX_RETRIES * 3 + 1

    async def test_429s_are_asked_again_until_the_callers_deadline(
        self, session: Session, mock: aioresponses
    ) -> None:
        mock.post(
            PREDICTIONS, status=429, headers={"Retry-After": "0"}, payload=THROTTLED, repeat=True
        )
        with anyio.move_on_after(1) as scope:
            await session.request("POST", PREDICTIONS, json_body={}, create=True)
        assert scope.cancelled_caught
        # asked again past the retries, but not in a spin ("Retry-After: 0" gets a growing floor)
        assert MAX_RETRIES + 1 < len(calls(mock, "POST", PREDICTIONS)) < 20

    async def test_without_retries_a_429_is_raised(self, mock: aioresponses) -> None:
        mock.get(ONE, status=429, headers={"Retry-After": "0"}, payload=THROTTLED, repeat=True)
        async with Client(
            api_token=TOKEN, base_url=API, rate_limits=None, max_retries=0, environ={}
        ) as client:
            with pytest.raises(RateLimitError) as info:
                await client._session.request("GET", ONE)
        assert info.value.retry_after == 0
        assert info.value.maybe_created is False
        assert "Request was throttled" in str(info.value)

    async def test_an_absurd_retry_after_is_waited_only_up_to_the_cap(
        self, session: Session, mock: aioresponses, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(areplicate._session, "MAX_RETRY_AFTER", 0.2)
        mock.get(ONE, status=429, headers={"Retry-After": "86400"}, payload=THROTTLED)
        mock.get(ONE, payload=PREDICTION)
        with anyio.fail_after(10):
            response = await session.request("GET", ONE)
        assert response.status == 200
        assert len(calls(mock, "GET", ONE)) == 2


class TestCreatesAreNeverSentTwice:
    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    async def test_5xx_after_sending(
        self, session: Session, mock: aioresponses, status: int
    ) -> None:
        mock.post(PREDICTIONS, status=status, payload={"detail": "boom"}, repeat=True)
        with pytest.raises(ServerError) as info:
            await session.request("POST", PREDICTIONS, json_body={"input": {}}, create=True)
        assert info.value.status == status
        assert len(calls(mock, "POST", PREDICTIONS)) == 1

    @pytest.mark.parametrize(
        "exception",
        [
            asyncio.TimeoutError(),
            aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
            aiohttp.ServerDisconnectedError(),
            aiohttp.ClientPayloadError("Response payload is not completed"),
            ConnectionResetError(104, "Connection reset by peer"),
        ],
        ids=lambda e: type(e).__name__,
    )
    async def test_ambiguous_failure_after_sending(
        self, session: Session, mock: aioresponses, exception: Exception
    ) -> None:
        mock.post(PREDICTIONS, exception=exception, repeat=True)
        with pytest.raises(APIConnectionError) as info:
            await session.request("POST", PREDICTIONS, json_body={"input": {}}, create=True)
        assert info.value.sent is True
        assert len(calls(mock, "POST", PREDICTIONS)) == 1

    async def test_read_timeout_is_an_api_timeout_error(
        self, session: Session, mock: aioresponses
    ) -> None:
        mock.post(PREDICTIONS, exception=asyncio.TimeoutError())
        with pytest.raises(
            APITimeoutError, match=r"POST https://api\.replicate\.com/v1/predictions: no response"
        ):
            await session.request("POST", PREDICTIONS, json_body={}, create=True)

    async def test_refused_before_sending_is_retried(
        self, session: Session, mock: aioresponses, sleeps: list[float]
    ) -> None:
        mock.post(PREDICTIONS, exception=refused())
        mock.post(PREDICTIONS, exception=aiohttp.ConnectionTimeoutError("connect timed out"))
        mock.post(PREDICTIONS, status=201, payload=PREDICTION)
        response = await session.request("POST", PREDICTIONS, json_body={"input": {}}, create=True)
        assert response.status == 201
        assert len(calls(mock, "POST", PREDICTIONS)) == 3

    async def test_refused_until_retries_run_out(
        self, session: Session, mock: aioresponses, sleeps: list[float]
    ) -> None:
        mock.post(PREDICTIONS, exception=refused(), repeat=True)
        with pytest.raises(APIConnectionError, match="could not connect") as info:
            await session.request("POST", PREDICTIONS, json_body={}, create=True)
        assert info.value.sent is False
        assert len(calls(mock, "POST", PREDICTIONS)) == MAX_RETRIES + 1


class TestReadsAreRetried:
    @pytest.mark.parametrize("first", [500, 504])
    async def test_5xx_are_retried_with_backoff(
        self, session: Session, mock: aioresponses, sleeps: list[float], first: int
    ) -> None:
        mock.get(ONE, status=first, body="")
        mock.get(ONE, status=502, body=CLOUDFLARE_502, content_type="text/html")
        mock.get(ONE, status=503, payload={"detail": "unavailable"})
        mock.get(ONE, payload=PREDICTION)
        response = await session.request("GET", ONE)
        assert response.json() == PREDICTION
        assert len(calls(mock, "GET", ONE)) == 4
        waits = [s for s in sleeps if s > 0]
        assert len(waits) == 3
        for n, wait in enumerate(waits):  # 0.5 s doubling, plus up to 0.5 s of jitter
            assert 0.5 * 2**n <= wait <= 0.5 * 2**n + 0.5

    async def test_until_retries_run_out(
        self, session: Session, mock: aioresponses, sleeps: list[float]
    ) -> None:
        mock.get(ONE, status=503, payload={"detail": "unavailable"}, repeat=True)
        with pytest.raises(ServerError, match="HTTP 503: unavailable"):
            await session.request("GET", ONE)
        assert len(calls(mock, "GET", ONE)) == MAX_RETRIES + 1

    @pytest.mark.parametrize("status", [400, 401, 404, 422])
    async def test_other_errors_are_not_retried(
        self, session: Session, mock: aioresponses, status: int
    ) -> None:
        mock.get(ONE, status=status, payload={"detail": "no"}, repeat=True)
        with pytest.raises(APIError):
            await session.request("GET", ONE)
        assert len(calls(mock, "GET", ONE)) == 1

    @pytest.mark.parametrize(
        "exception",
        [asyncio.TimeoutError(), aiohttp.ServerDisconnectedError(), refused()],
        ids=lambda e: type(e).__name__,
    )
    async def test_connection_failures_are_retried(
        self, session: Session, mock: aioresponses, sleeps: list[float], exception: Exception
    ) -> None:
        mock.get(ONE, exception=exception)
        mock.get(ONE, payload=PREDICTION)
        assert (await session.request("GET", ONE)).status == 200

    async def test_cancel_is_retried(
        self, session: Session, mock: aioresponses, sleeps: list[float]
    ) -> None:
        cancel = f"{ONE}/cancel"
        mock.post(cancel, status=503)
        mock.post(cancel, payload={**PREDICTION, "status": "canceled"})
        assert (await session.request("POST", cancel)).json()["status"] == "canceled"
        assert len(calls(mock, "POST", cancel)) == 2

    async def test_stamina_testing_mode_is_honoured(
        self, session: Session, mock: aioresponses
    ) -> None:
        mock.get(ONE, status=503, repeat=True)
        with stamina.set_testing(True, attempts=2, cap=True), pytest.raises(ServerError):
            await session.request("GET", ONE)
        assert len(calls(mock, "GET", ONE)) == 2


class TestErrorMapping:
    async def test_401_has_the_apis_detail(self, session: Session, mock: aioresponses) -> None:
        mock.post(
            PREDICTIONS,
            status=401,
            body=json.dumps(INVALID_TOKEN),
            content_type="application/problem+json",
            headers={"X-Request-Id": "req-8c1f"},
        )
        with pytest.raises(AuthenticationError) as info:
            await session.request("POST", PREDICTIONS, json_body={}, create=True)
        error = info.value
        assert (error.status, error.title, error.request_id) == (401, "Unauthenticated", "req-8c1f")
        assert str(error) == (
            "HTTP 401: Unauthenticated: You did not pass a valid authentication token "
            "(request id req-8c1f)"
        )
        assert len(calls(mock, "POST", PREDICTIONS)) == 1

    @pytest.mark.parametrize("create", [False, True], ids=["get", "create"])
    async def test_html_502_is_a_server_error_not_a_json_error(
        self, session: Session, mock: aioresponses, sleeps: list[float], create: bool
    ) -> None:
        method, url = ("POST", PREDICTIONS) if create else ("GET", ONE)
        mock.add(
            url, method, status=502, body=CLOUDFLARE_502, content_type="text/html", repeat=True
        )
        with pytest.raises(ServerError) as info:
            await session.request(method, url, create=create)
        assert str(info.value).startswith("HTTP 502: 502 Bad Gateway")
        assert info.value.maybe_created is create
        assert not isinstance(info.value.__context__, json.JSONDecodeError)

    async def test_404_and_422(self, session: Session, mock: aioresponses) -> None:
        mock.get(ONE, status=404, payload={"detail": "The requested resource could not be found."})
        with pytest.raises(NotFoundError, match="could not be found"):
            await session.request("GET", ONE)
        body = {
            "title": "Input validation failed",
            "detail": "- input: prompt is required\n",
            "status": 422,
            "invalid_fields": [
                {"type": "required", "field": "input", "description": "prompt is required"}
            ],
        }
        mock.post(PREDICTIONS, status=422, payload=body)
        with pytest.raises(InvalidRequestError) as info:
            await session.request("POST", PREDICTIONS, json_body={}, create=True)
        assert info.value.invalid_fields[0]["field"] == "input"

    async def test_2xx_that_is_not_json(
        self, session: Session, mock: aioresponses, sleeps: list[float]
    ) -> None:
        mock.get(ONE, body="<html>maintenance</html>", content_type="text/html", repeat=True)
        with pytest.raises(UnexpectedResponseError, match="not JSON: '<html>maintenance"):
            await session.request("GET", ONE)
        assert len(calls(mock, "GET", ONE)) == MAX_RETRIES + 1, "a read asks again"

    async def test_truncated_json_is_read_again(
        self, session: Session, mock: aioresponses, sleeps: list[float]
    ) -> None:
        mock.get(ONE, body='{"id": "gm3q', content_type="application/json")
        mock.get(ONE, payload=PREDICTION)
        response = await session.request("GET", ONE)
        assert response.json() == PREDICTION

    async def test_a_body_the_caller_does_not_want_as_json(
        self, session: Session, mock: aioresponses
    ) -> None:
        mock.get(ONE, body="# README", content_type="text/plain")
        response = await session.request("GET", ONE, headers={"Accept": "text/plain"})
        assert response.body == b"# README"
        with pytest.raises(UnexpectedResponseError) as info:
            response.json()
        assert info.value.status == 200


class TestTheToken:
    @pytest.mark.parametrize(
        ("url", "sent"),
        [
            (f"{API}/predictions", True),
            ("https://api.replicate.com:443/v1/files/abc", True),
            ("https://stream.replicate.com/v1/files/abc", False),
            ("https://streaming-api.svc.us.c.replicate.net/v1/predictions/abc", False),
            ("https://replicate.delivery/pbxt/abc/out-0.png", False),
            ("http://api.replicate.com/v1/predictions", False),
            ("https://api.replicate.com.evil.example/v1/predictions", False),
            ("https://api.replicate.com@evil.example/v1/predictions", False),
        ],
    )
    def test_headers_for(self, session: Session, url: str, sent: bool) -> None:
        headers = session.headers_for(url, {"Accept": "text/event-stream"})
        assert headers["Accept"] == "text/event-stream"
        assert headers.get("Authorization") == (f"Bearer {TOKEN}" if sent else None)

    async def test_a_proxy_keeps_its_key_off_replicates_hosts(self) -> None:
        async with Client(
            api_token=TOKEN, base_url="https://api.cometapi.com/replicate", environ={}
        ) as c:
            assert "Authorization" not in c._session.headers_for(ONE)
            assert c._session.headers_for("https://api.cometapi.com/replicate/v1/predictions/x")

    async def test_what_goes_on_the_wire(self, session: Session, mock: aioresponses) -> None:
        mock.post(PREDICTIONS, status=201, payload=PREDICTION)
        await session.request("POST", PREDICTIONS, json_body={"input": {"x": 1}}, create=True)
        (call,) = calls(mock, "POST", PREDICTIONS)
        headers = call.kwargs["headers"]
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["User-Agent"] == f"areplicate/{areplicate.__version__}"
        assert headers["Accept"] == "application/json"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(call.kwargs["data"]) == {"input": {"x": 1}}
        assert call.kwargs["allow_redirects"] is False

    async def test_not_sent_to_another_host(self, session: Session, mock: aioresponses) -> None:
        elsewhere = "https://replicate.delivery/pbxt/abc/out-0.png"
        mock.get(elsewhere, body=b"png", repeat=True)
        await session.request("GET", elsewhere, headers={"Accept": "image/png"})
        async with session.stream(elsewhere) as resp:
            assert await resp.read() == b"png"
        for call in calls(mock, "GET", elsewhere):
            assert "Authorization" not in call.kwargs["headers"]
            assert TOKEN not in json.dumps(call.kwargs, default=str)

    async def test_streams_get_the_token_only_on_the_api_and_never_follow_its_redirects(
        self, session: Session, mock: aioresponses
    ) -> None:
        on_api = f"{ONE}/stream"
        elsewhere = "https://stream.replicate.com/v1/files/abc"
        mock.get(on_api, status=404, payload={"detail": "Not found."})
        mock.get(elsewhere, body="event: done\ndata: {}\n\n", content_type="text/event-stream")
        with pytest.raises(NotFoundError, match=r"HTTP 404: Not found\."):
            async with session.stream(on_api):
                pass
        async with session.stream(elsewhere, headers={"Accept": "text/event-stream"}) as resp:
            assert await resp.text() == "event: done\ndata: {}\n\n"
        (api_call,) = calls(mock, "GET", on_api)
        (other_call,) = calls(mock, "GET", elsewhere)
        assert api_call.kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert api_call.kwargs["allow_redirects"] is False
        assert "Authorization" not in other_call.kwargs["headers"]
        assert other_call.kwargs["headers"]["Accept"] == "text/event-stream"

    async def test_in_no_exception_repr_or_log(
        self,
        client: Client,
        mock: aioresponses,
        caplog: pytest.LogCaptureFixture,
        sleeps: list[float],
    ) -> None:
        caplog.set_level(logging.DEBUG)
        set_on_retry_hooks([LoggingOnRetryHook])  # stamina's retry log lines, whatever is installed
        session = client._session
        mock.post(PREDICTIONS, status=401, payload=INVALID_TOKEN)
        mock.get(ONE, status=503, payload={"detail": "unavailable"}, repeat=True)
        mock.post(f"{ONE}/cancel", exception=refused(), repeat=True)
        mock.get(f"{API}/files", exception=asyncio.TimeoutError(), repeat=True)
        mock.get(f"{API}/account", status=429, headers={"Retry-After": "0"}, payload=THROTTLED)
        mock.get(f"{API}/account", status=402, payload={"detail": "out of credit"})
        mock.get(f"{API}/hardware", status=200, body="not json", repeat=True)
        attempts = [
            session.request("POST", PREDICTIONS, json_body={}, create=True),
            session.request("GET", ONE),
            session.request("POST", f"{ONE}/cancel"),
            session.request("GET", f"{API}/files"),
            session.request("GET", f"{API}/account"),
        ]
        errors: list[BaseException] = []
        for attempt in attempts:
            with pytest.raises(areplicate.ReplicateError) as info:
                await attempt
            errors.append(info.value)
        with pytest.raises(UnexpectedResponseError) as info:
            await session.request("GET", f"{API}/hardware")
        errors.append(info.value)
        with pytest.raises(APIConnectionError) as info:  # unmatched: aioresponses refuses it
            async with session.stream("https://stream.replicate.com/v1/files/x"):
                pass
        errors.append(info.value)
        await client.aclose()
        with pytest.raises(RuntimeError) as closed:
            await session.request("GET", ONE)
        errors.append(closed.value)

        texts = [repr(client), str(client), repr(client.config), str(client.config), repr(session)]
        for error in errors:
            texts += [str(error), repr(error), *map(str, error.args)]
            texts += traceback.format_exception(type(error), error, error.__traceback__)
        assert len(caplog.records) >= 5  # the retries were logged
        for record in caplog.records:
            texts += [record.getMessage(), repr(vars(record))]
        for key in mock.requests:
            texts.append(str(key[1]))
        leaks = [t for t in texts if TOKEN in t or TOKEN[3:] in t]
        assert not leaks
