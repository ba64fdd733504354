"""areplicate.webhooks (verify, parse, sign) as a receiver uses it, and client.webhooks.default_secret.

The pure signing core has its own exhaustive tests (tests/core/test_webhooks.py); these check the
public wrappers: the clock default, the header containers web frameworks hand you, the reference
package's agreement through the public names, and reading the delivered prediction.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from standardwebhooks.webhooks import Webhook
from starlette.datastructures import Headers

import areplicate
from areplicate import WebhookVerificationError, webhooks
from areplicate.testing import FakeReplicate

# The Standard Webhooks (Svix) test vector (docs/api-notes.md#webhooks).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

PREDICTION = {
    "id": "ufawqhfynnddngldkgtslldrkq",
    "model": "acme/echo",
    "version": "hidden",
    "input": {"text": "hi"},
    "output": "HI",
    "logs": "",
    "error": None,
    "status": "succeeded",
    "created_at": "2024-10-04T18:07:35.262Z",
    "completed_at": "2024-10-04T18:07:36.1Z",
    "urls": {"get": "https://api.replicate.com/v1/predictions/u", "cancel": "c", "web": "w"},
    "metrics": {"predict_time": 0.5},
    "data_removed": False,
    "future_field": [1, 2],
}


def vector_headers() -> dict[str, str]:
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": SIGNATURE,
    }


class TestVerify:
    def test_the_standard_webhooks_vector_verifies(self) -> None:
        webhooks.verify(vector_headers(), BODY, SECRET, now=TIMESTAMP)
        assert webhooks.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE

    def test_the_vector_is_stale_by_the_real_clock(self) -> None:
        with pytest.raises(WebhookVerificationError, match="old"):
            webhooks.verify(vector_headers(), BODY, SECRET)

    def test_now_defaults_to_the_current_time(self) -> None:
        stamp = int(time.time())
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhooks.sign(SECRET, "msg_1", stamp, BODY),
        }
        webhooks.verify(headers, BODY, SECRET)

    def test_tolerance_is_passed_through(self) -> None:
        webhooks.verify(vector_headers(), BODY, SECRET, now=TIMESTAMP + 1000, tolerance=1000)
        with pytest.raises(WebhookVerificationError, match="tolerance 999s"):
            webhooks.verify(vector_headers(), BODY, SECRET, now=TIMESTAMP + 1000, tolerance=999)

    @pytest.mark.parametrize(
        "wrap",
        [
            lambda h: {k.title(): v for k, v in h.items()},
            lambda h: {k.upper(): v for k, v in h.items()},
            CIMultiDict,
            lambda h: CIMultiDictProxy(CIMultiDict({k.title(): v for k, v in h.items()})),
            lambda h: Headers(headers={k.title(): v for k, v in h.items()}),
            lambda h: Headers(raw=[(k.encode(), v.encode()) for k, v in h.items()]),
        ],
        ids=["dict-title", "dict-upper", "CIMultiDict", "aiohttp-proxy", "starlette", "asgi-raw"],
    )
    def test_header_containers_of_web_frameworks(self, wrap: Any) -> None:
        webhooks.verify(wrap(vector_headers()), BODY, SECRET, now=TIMESTAMP)

    def test_a_tampered_body_fails(self) -> None:
        with pytest.raises(WebhookVerificationError, match="does not match"):
            webhooks.verify(vector_headers(), BODY.replace(b"2", b"3"), SECRET, now=TIMESTAMP)

    def test_re_encoded_json_fails_with_the_reason(self) -> None:
        # What a handler gets wrong most: verifying a re-serialization of the parsed body.
        re_encoded = json.dumps(json.loads(BODY), separators=(",", ":"))
        with pytest.raises(WebhookVerificationError, match="raw bytes"):
            webhooks.verify(vector_headers(), re_encoded, SECRET, now=TIMESTAMP)


SECRETS = st.binary(min_size=16, max_size=40).map(lambda k: "whsec_" + base64.b64encode(k).decode())
IDS = st.from_regex(r"msg_[A-Za-z0-9]{1,30}", fullmatch=True)
BODIES = st.text(max_size=200)
JSON_BODIES = st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20)).map(
    json.dumps
)


class TestAgreesWithStandardWebhooks:
    @given(secret=SECRETS, msg_id=IDS, stamp=st.integers(10**9, 2 * 10**9), body=BODIES)
    def test_their_signature_verifies_with_ours(
        self, secret: str, msg_id: str, stamp: int, body: str
    ) -> None:
        theirs = Webhook(secret).sign(
            msg_id, dt.datetime.fromtimestamp(stamp, dt.timezone.utc), body
        )
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": theirs,
        }
        webhooks.verify(headers, body.encode(), secret, now=stamp)
        assert webhooks.sign(secret, msg_id, stamp, body) == theirs

    @given(secret=SECRETS, msg_id=IDS, body=JSON_BODIES)
    def test_our_signature_verifies_with_theirs(self, secret: str, msg_id: str, body: str) -> None:
        stamp = int(time.time())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhooks.sign(secret, msg_id, stamp, body),
        }
        assert Webhook(secret).verify(body, headers) == json.loads(body)
        webhooks.verify(headers, body, secret)

    def test_the_vector_through_both(self) -> None:
        stamp = dt.datetime.fromtimestamp(TIMESTAMP, dt.timezone.utc)
        assert Webhook(SECRET).sign(MSG_ID, stamp, BODY.decode()) == SIGNATURE
        webhooks.verify(vector_headers(), BODY, SECRET, now=TIMESTAMP)


class TestParse:
    def test_a_delivery_reads_as_a_prediction(self) -> None:
        body = json.dumps(PREDICTION).encode()
        p = webhooks.parse(body)
        assert isinstance(p, areplicate.Prediction)
        assert (p.id, p.status, p.output, p.is_terminal) == (
            PREDICTION["id"],
            "succeeded",
            "HI",
            True,
        )
        assert p.extra == {"future_field": [1, 2]}
        assert webhooks.parse(body.decode()) == p

    def test_a_starting_prediction_with_keys_missing(self) -> None:
        p = webhooks.parse(b'{"id": "x", "status": "starting", "metrics": {}}')
        assert (p.id, p.output, p.is_terminal) == ("x", None, False)

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"", "not JSON"),
            (b"<html>502</html>", "not JSON"),
            (b"\xff\xfe", "not JSON"),
            (b"[1, 2]", "not a prediction object"),
            (b'"text"', "not a prediction object"),
            (b'{"status": "succeeded"}', "id"),
            (b'{"id": "x", "created_at": "yesterday"}', "created_at"),
        ],
    )
    def test_bodies_that_are_not_predictions(self, body: bytes, reason: str) -> None:
        with pytest.raises(WebhookVerificationError, match=reason):
            webhooks.parse(body)


class SecretAPI:
    def __init__(self) -> None:
        self.calls = 0
        self.body: Any = {"key": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"}
        self.auth: list[str | None] = []

    async def secret(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.auth.append(request.headers.get("Authorization"))
        if isinstance(self.body, bytes):
            return web.Response(body=self.body, content_type="application/json")
        return web.json_response(self.body)


@pytest.fixture
def secret_api() -> SecretAPI:
    return SecretAPI()


@pytest.fixture
async def client(secret_api: SecretAPI) -> AsyncIterator[areplicate.Client]:
    app = web.Application()
    app.router.add_get("/v1/webhooks/default/secret", secret_api.secret)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        async with areplicate.Client(api_token="r8_test", base_url=base, rate_limits=None) as c:
            yield c
    finally:
        await runner.cleanup()


class TestDefaultSecret:
    async def test_fetched_once_then_remembered(
        self, client: areplicate.Client, secret_api: SecretAPI
    ) -> None:
        assert await client.webhooks.default_secret() == "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"
        assert await client.webhooks.default_secret() == "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"
        assert secret_api.calls == 1
        assert secret_api.auth == ["Bearer r8_test"]

    async def test_refresh_asks_again(
        self, client: areplicate.Client, secret_api: SecretAPI
    ) -> None:
        await client.webhooks.default_secret()
        secret_api.body = {"key": "whsec_bmV3"}
        assert await client.webhooks.default_secret(refresh=True) == "whsec_bmV3"
        assert secret_api.calls == 2

    @pytest.mark.parametrize(
        "body",
        [{"secret": "whsec_abc"}, {"key": "abc_hidden_value"}, {"key": None}, [1], b"not json"],
    )
    async def test_malformed_answer_is_a_clear_error_without_the_body(
        self, client: areplicate.Client, secret_api: SecretAPI, body: Any
    ) -> None:
        secret_api.body = body
        with pytest.raises(areplicate.UnexpectedResponseError, match="'key'") as info:
            await client.webhooks.default_secret()
        assert "abc" not in str(info.value)
        assert info.value.body is None


class TestRefusedSecretsAndTolerances:
    @pytest.mark.parametrize("key", ["whsec_", "whsec_abc", "whsec_not base64!"])
    async def test_an_unusable_key_from_the_api_is_an_error_and_not_remembered(
        self, client: areplicate.Client, secret_api: SecretAPI, key: str
    ) -> None:
        secret_api.body = {"key": key}
        with pytest.raises(areplicate.UnexpectedResponseError, match="empty or not base64"):
            await client.webhooks.default_secret()
        secret_api.body = {"key": "whsec_bmV3"}
        assert await client.webhooks.default_secret() == "whsec_bmV3"
        assert secret_api.calls == 2

    def test_an_empty_key_never_verifies_a_delivery(self) -> None:
        now = int(time.time())
        signed = f"{MSG_ID}.{now}.".encode() + BODY
        forged = "v1," + base64.b64encode(hmac.new(b"", signed, hashlib.sha256).digest()).decode()
        headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": forged}
        with pytest.raises(WebhookVerificationError, match="empty"):
            webhooks.verify(headers, BODY, "whsec_")

    @pytest.mark.parametrize("tolerance", [float("inf"), float("nan")])
    def test_a_non_finite_tolerance_is_refused(self, tolerance: float) -> None:
        # The vector is years old: with tolerance=inf (or NaN) it would verify today.
        with pytest.raises(ValueError, match="finite"):
            webhooks.verify(vector_headers(), BODY, SECRET, tolerance=tolerance)

    def test_a_deeply_nested_body_is_a_verification_error(self) -> None:
        with pytest.raises(WebhookVerificationError, match="nested too deeply"):
            webhooks.parse(b"[" * 100_000)


class TestWithTheFake:
    async def test_the_fakes_deliveries_verify_and_parse(self) -> None:

        received: list[tuple[dict[str, str], bytes]] = []
        got_completed = asyncio.Event()

        async def receiver(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            webhooks.verify(request.headers, body, secret)  # aiohttp's CIMultiDictProxy
            received.append((dict(request.headers), body))
            if webhooks.parse(body).is_terminal:
                got_completed.set()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", receiver)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        fake = FakeReplicate()
        fake.add_model("acme/upper", lambda text="": text.upper())
        try:
            async with (
                fake.serve() as url,
                areplicate.Client(api_token="r8_test", base_url=url, rate_limits=None) as client,
            ):
                secret = await client.webhooks.default_secret()
                assert secret == fake.webhook_secret
                p = await client.predictions.create(
                    "acme/upper", {"text": "hi"}, webhook=hook, webhook_events_filter=["completed"]
                )
                with anyio.fail_after(10):
                    await got_completed.wait()
        finally:
            await runner.cleanup()
        [(headers, body)] = received
        delivered = webhooks.parse(body)
        assert (delivered.id, delivered.status, delivered.output) == (p.id, "succeeded", "HI")
        assert headers["webhook-id"]
        assert [d.status for d in fake.webhook_deliveries] == [204]
