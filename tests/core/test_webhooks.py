"""Webhook signatures the Standard Webhooks way: the published test vector, round trips, tampering,
agreement with the ``standardwebhooks`` package, and clear reasons for every malformed delivery."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from areplicate import WebhookVerificationError
from areplicate._core.webhooks import DEFAULT_TOLERANCE, sign, verify

# Svix's vector (docs/api-notes.md#webhooks), used by the official Python and JS clients
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _headers(
    msg_id: str = MSG_ID, timestamp: object = TIMESTAMP, signature: str = SIGNATURE
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


SECRETS = st.binary(min_size=1, max_size=64).map(lambda k: "whsec_" + base64.b64encode(k).decode())
IDS = st.text(min_size=1, max_size=40).map(str.strip).filter(bool)
STAMPS = st.integers(0, 2**40)


class TestVector:
    def test_sign(self) -> None:
        assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
        assert sign(SECRET, MSG_ID, TIMESTAMP, BODY.decode()) == SIGNATURE

    @pytest.mark.parametrize("body", [BODY, BODY.decode(), bytearray(BODY), memoryview(BODY)])
    def test_verify_accepts_raw_bytes_or_text(self, body: bytes) -> None:
        verify(_headers(), body, SECRET, now=TIMESTAMP)

    def test_header_names_are_case_insensitive(self) -> None:
        headers = {
            "Webhook-Id": MSG_ID,
            "WEBHOOK-TIMESTAMP": str(TIMESTAMP),
            "Webhook-Signature": SIGNATURE,
        }
        verify(headers, BODY, SECRET, now=TIMESTAMP)

    @pytest.mark.parametrize(
        "signature",
        [
            f"v1,Zm9vYmFy {SIGNATURE}",  # a rotated-out key's signature first
            f"v2,whatever {SIGNATURE}",  # a future scheme is skipped
            f"{SIGNATURE}  v1,bm90IGl0",  # extra spaces
            f"v1,!!!notbase64 {SIGNATURE}",
        ],
    )
    def test_any_one_matching_v1_signature_is_enough(self, signature: str) -> None:
        verify(_headers(signature=signature), BODY, SECRET, now=TIMESTAMP)

    def test_timestamp_tolerance(self) -> None:
        verify(_headers(), BODY, SECRET, now=TIMESTAMP + DEFAULT_TOLERANCE)
        verify(_headers(), BODY, SECRET, now=TIMESTAMP - DEFAULT_TOLERANCE)
        verify(_headers(), BODY, SECRET, now=TIMESTAMP + 3600, tolerance=3600)


class TestRejected:
    @pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_missing_header(self, name: str) -> None:
        headers = _headers()
        del headers[name]
        with pytest.raises(WebhookVerificationError, match=f"missing {name} header"):
            verify(headers, BODY, SECRET, now=TIMESTAMP)

    @pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_blank_header(self, name: str) -> None:
        headers = {**_headers(), name: "  "}
        with pytest.raises(WebhookVerificationError, match=f"missing {name} header"):
            verify(headers, BODY, SECRET, now=TIMESTAMP)

    @pytest.mark.parametrize("timestamp", ["soon", "1614265330.5", "1e9", "9" * 5000, "0x10"])
    def test_timestamp_not_whole_seconds(self, timestamp: str) -> None:
        with pytest.raises(WebhookVerificationError, match="whole Unix seconds"):
            verify(_headers(timestamp=timestamp), BODY, SECRET, now=TIMESTAMP)

    def test_stale(self) -> None:
        with pytest.raises(WebhookVerificationError, match=r"301s old .* replay"):
            verify(_headers(), BODY, SECRET, now=TIMESTAMP + DEFAULT_TOLERANCE + 1)

    def test_from_the_future(self) -> None:
        with pytest.raises(WebhookVerificationError, match="in the future"):
            verify(_headers(), BODY, SECRET, now=TIMESTAMP - DEFAULT_TOLERANCE - 1)

    def test_signature_entry_without_comma(self) -> None:
        with pytest.raises(WebhookVerificationError, match="malformed webhook-signature entry"):
            verify(_headers(signature="g0hM9SsE"), BODY, SECRET, now=TIMESTAMP)

    def test_no_v1_signature(self) -> None:
        with pytest.raises(WebhookVerificationError, match="no 'v1,' signature"):
            verify(_headers(signature="v2,abc v0,def"), BODY, SECRET, now=TIMESTAMP)

    @pytest.mark.parametrize("signature", ["v1,", "v1,@@@", "v1,Zm9v", "v1,é"])
    def test_bad_or_wrong_signature(self, signature: str) -> None:
        with pytest.raises(WebhookVerificationError, match="does not match"):
            verify(_headers(signature=signature), BODY, SECRET, now=TIMESTAMP)

    def test_wrong_secret(self) -> None:
        other = "whsec_" + base64.b64encode(b"another key").decode()
        with pytest.raises(WebhookVerificationError, match="wrong secret"):
            verify(_headers(), BODY, other, now=TIMESTAMP)

    @pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "", None, b"whsec_x"])
    def test_secret_without_prefix(self, secret: object) -> None:
        with pytest.raises(WebhookVerificationError, match="must start with 'whsec_'"):
            verify(_headers(), BODY, secret, now=TIMESTAMP)  # type: ignore[arg-type]
        with pytest.raises(WebhookVerificationError, match="must start with 'whsec_'"):
            sign(secret, MSG_ID, TIMESTAMP, BODY)  # type: ignore[arg-type]

    @pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_abc", "whsec_é"])
    def test_secret_not_base64(self, secret: str) -> None:
        with pytest.raises(WebhookVerificationError, match="not valid base64"):
            verify(_headers(), BODY, secret, now=TIMESTAMP)

    @pytest.mark.parametrize("body", [{"test": 2432232314}, None, 12])
    def test_parsed_json_is_refused_with_the_reason(self, body: object) -> None:
        with pytest.raises(WebhookVerificationError, match="raw request bytes"):
            verify(_headers(), body, SECRET, now=TIMESTAMP)  # type: ignore[arg-type]

    @given(
        msg_id=st.text(max_size=30),
        timestamp=st.text(max_size=30) | STAMPS.map(str),
        signature=st.text(max_size=80),
        body=st.binary(max_size=50),
        secret=st.text(max_size=50) | SECRETS,
    )
    def test_malformed_deliveries_only_ever_raise_webhook_verification_error(
        self, msg_id: str, timestamp: str, signature: str, body: bytes, secret: str
    ) -> None:
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }
        with pytest.raises(WebhookVerificationError) as info:
            verify(headers, body, secret, now=TIMESTAMP, tolerance=2**41)
        assert str(info.value)
        assert not isinstance(info.value, ValueError)


class TestRoundTrip:
    @given(secret=SECRETS, msg_id=IDS, timestamp=STAMPS, body=st.binary(max_size=200))
    def test_sign_then_verify(self, secret: str, msg_id: str, timestamp: int, body: bytes) -> None:
        signature = sign(secret, msg_id, timestamp, body)
        assert signature.startswith("v1,")
        verify(_headers(msg_id, timestamp, signature), body, secret, now=timestamp)

    @given(
        secret=SECRETS,
        body=st.binary(min_size=1, max_size=200),
        data=st.data(),
    )
    def test_any_single_byte_change_to_the_body_fails(
        self, secret: str, body: bytes, data: st.DataObject
    ) -> None:
        signature = sign(secret, MSG_ID, TIMESTAMP, body)
        index = data.draw(st.integers(0, len(body) - 1))
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
        tampered = body[:index] + bytes([byte]) + body[index + 1 :]
        with pytest.raises(WebhookVerificationError, match="does not match"):
            verify(_headers(signature=signature), tampered, secret, now=TIMESTAMP)

    @given(secret=SECRETS, msg_id=IDS, data=st.data())
    def test_any_single_character_change_to_the_id_fails(
        self, secret: str, msg_id: str, data: st.DataObject
    ) -> None:
        signature = sign(secret, msg_id, TIMESTAMP, BODY)
        index = data.draw(st.integers(0, len(msg_id) - 1))
        char = data.draw(st.characters(exclude_categories=["Cs"]))
        tampered = msg_id[:index] + char + msg_id[index + 1 :]
        assume(tampered.strip() and tampered.strip() != msg_id)
        with pytest.raises(WebhookVerificationError, match="does not match"):
            verify(_headers(tampered, TIMESTAMP, signature), BODY, secret, now=TIMESTAMP)

    @given(secret=SECRETS, timestamp=st.integers(10**9, 2 * 10**9), data=st.data())
    def test_any_single_character_change_to_the_timestamp_fails(
        self, secret: str, timestamp: int, data: st.DataObject
    ) -> None:
        signature = sign(secret, MSG_ID, timestamp, BODY)
        text = str(timestamp)
        index = data.draw(st.integers(0, len(text) - 1))
        char = data.draw(st.characters(codec="ascii").filter(lambda c: c != text[index]))
        tampered = text[:index] + char + text[index + 1 :]
        with pytest.raises(WebhookVerificationError):
            # a tolerance wide enough that only the signature can object
            verify(
                _headers(MSG_ID, tampered, signature), BODY, secret, now=timestamp, tolerance=1e12
            )


class TestAgreesWithStandardWebhooks:
    """The ``standardwebhooks`` reference package signs and verifies exactly as we do."""

    @given(secret=SECRETS, msg_id=IDS, timestamp=st.integers(0, 2**33), body=st.text(max_size=200))
    def test_same_signature(self, secret: str, msg_id: str, timestamp: int, body: str) -> None:
        moment = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)
        assert sign(secret, msg_id, timestamp, body) == Webhook(secret).sign(msg_id, moment, body)

    @given(secret=SECRETS, msg_id=IDS, body=st.text(max_size=200))
    def test_each_verifies_the_others_signature(self, secret: str, msg_id: str, body: str) -> None:
        now = int(time.time())  # the reference package reads the clock itself
        ours = _headers(msg_id, now, sign(secret, msg_id, now, body))
        Webhook(secret).verify(body, ours, json_parse=False)
        theirs = _headers(
            msg_id,
            now,
            Webhook(secret).sign(msg_id, dt.datetime.fromtimestamp(now, dt.timezone.utc), body),
        )
        verify(theirs, body, secret, now=now)

    def test_the_vector(self) -> None:
        moment = dt.datetime.fromtimestamp(TIMESTAMP, dt.timezone.utc)
        assert Webhook(SECRET).sign(MSG_ID, moment, BODY.decode()) == SIGNATURE


class TestNoSecurityOff:
    """Inputs that would quietly switch verification off are refused."""

    def test_an_empty_key_is_refused(self) -> None:
        with pytest.raises(WebhookVerificationError, match="empty after 'whsec_'"):
            sign("whsec_", MSG_ID, TIMESTAMP, BODY)
        with pytest.raises(WebhookVerificationError, match="empty after 'whsec_'"):
            verify(_headers(), BODY, "whsec_", now=TIMESTAMP)

    def test_a_signature_made_with_an_empty_key_never_verifies(self) -> None:
        # Anyone can compute this; the reference package refuses an empty secret too.
        signed = f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY
        forged = "v1," + base64.b64encode(hmac.new(b"", signed, hashlib.sha256).digest()).decode()
        with pytest.raises(WebhookVerificationError, match="empty"):
            verify(_headers(signature=forged), BODY, "whsec_", now=TIMESTAMP)

    @pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -float("inf"), -1])
    def test_a_tolerance_that_is_not_finite_and_positive_is_refused(self, tolerance: float) -> None:
        with pytest.raises(ValueError, match="finite number of seconds"):
            verify(_headers(), BODY, SECRET, now=TIMESTAMP + 10**9, tolerance=tolerance)

    @pytest.mark.parametrize("tolerance", ["300", None, True])
    def test_a_tolerance_that_is_not_a_number_is_refused(self, tolerance: object) -> None:
        with pytest.raises(TypeError, match="tolerance"):
            verify(_headers(), BODY, SECRET, now=TIMESTAMP, tolerance=tolerance)  # type: ignore[arg-type]

    @pytest.mark.parametrize("now", [float("nan"), float("inf")])
    def test_a_clock_that_is_not_finite_is_refused(self, now: float) -> None:
        with pytest.raises(ValueError, match="now must be"):
            verify(_headers(), BODY, SECRET, now=now)

    def test_zero_tolerance_still_accepts_the_exact_second(self) -> None:
        verify(_headers(), BODY, SECRET, now=TIMESTAMP, tolerance=0)
