"""Error responses → exceptions: every status class, problem+json, the old ``detail`` form, HTML, empty."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from areplicate import (
    APIError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
)
from areplicate._core.problems import decode_json, error_for, request_id

PROBLEM = {"Content-Type": "application/problem+json"}
NOW = 1_700_000_000.0
CLOUDFLARE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize("status", [100, 200, 201, 202, 204, 299])
def test_success_is_not_an_error(status: int) -> None:
    assert error_for(status, {}, b'{"detail": "fine"}') is None


@pytest.mark.parametrize("status", [301, 302, 304, 307, 399])
def test_a_redirect_is_an_error_naming_where_it_pointed(status: int) -> None:
    error = error_for(status, {"Location": "https://elsewhere.example/v1/x"}, b"")
    assert type(error) is APIError
    assert error.status == status
    assert "https://elsewhere.example/v1/x" in str(error)
    assert "not followed" in str(error)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, APIError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, APIError),
        (404, NotFoundError),
        (409, APIError),
        (413, APIError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (451, APIError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
    ],
)
@pytest.mark.parametrize(
    "body",
    [b"", b"   \n", b'{"detail": "x"}', CLOUDFLARE_502, b"\xff\xfe garbage", b"[1, 2]", b"null"],
    ids=["empty", "blank", "json", "html", "binary", "list", "null"],
)
def test_every_status_class_and_body_kind(status: int, cls: type[APIError], body: bytes) -> None:
    error = error_for(status, {}, body)
    assert type(error) is cls
    assert error.status == status
    assert str(error).startswith(f"HTTP {status}")


class TestProblemJson:
    def test_invalid_token_from_real_traffic(self) -> None:
        # tests/fixtures/cassettes/run__invalid-token.yaml
        body = b'{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}'
        error = error_for(401, {**PROBLEM, "X-Request-Id": "req-1"}, body)
        assert isinstance(error, AuthenticationError)
        assert (error.title, error.detail, error.request_id) == (
            "Unauthenticated",
            "You did not pass a valid authentication token",
            "req-1",
        )
        assert str(error) == (
            "HTTP 401: Unauthenticated: You did not pass a valid authentication token "
            "(request id req-1)"
        )
        assert error.body == json.loads(body)

    def test_old_detail_only_form(self) -> None:
        error = error_for(404, {}, b'{"detail":"Not found."}')
        assert isinstance(error, NotFoundError)
        assert error.title is None
        assert str(error) == "HTTP 404: Not found."

    def test_invalid_fields(self) -> None:
        body = {
            "title": "Input validation failed",
            "detail": "- input: prompt is required\n",
            "status": 422,
            "invalid_fields": [
                {"type": "required", "field": "input", "description": "prompt is required"},
                "not a dict",
            ],
        }
        error = error_for(422, PROBLEM, _json(body))
        assert isinstance(error, InvalidRequestError)
        assert error.invalid_fields == [
            {"type": "required", "field": "input", "description": "prompt is required"}
        ]
        assert "prompt is required" in str(error)

    def test_invalid_fields_missing_or_odd(self) -> None:
        assert error_for(422, {}, b'{"detail":"bad version"}').invalid_fields == []  # type: ignore[union-attr]
        assert error_for(422, {}, b'{"invalid_fields": 3}').invalid_fields == []  # type: ignore[union-attr]
        assert error_for(422, {}, b"<html>").invalid_fields == []  # type: ignore[union-attr]

    def test_error_key_when_there_is_no_detail(self) -> None:
        assert str(error_for(400, {}, b'{"error": "bad"}')) == "HTTP 400: bad"

    def test_non_string_fields_are_shown_as_json(self) -> None:
        error = error_for(400, {}, b'{"title": 5, "detail": {"why": ["x"]}}')
        assert error is not None
        assert (error.title, error.detail) == ("5", '{"why": ["x"]}')

    @pytest.mark.parametrize("body", [b'{"title": "", "detail": "  "}', b'{"detail": "\\n"}'])
    def test_blank_title_and_detail_are_no_message(self, body: bytes) -> None:
        error = error_for(500, {}, body)
        assert error is not None
        assert (error.title, error.detail) == (None, None)
        assert str(error) == "HTTP 500"

    def test_long_detail_is_cut(self) -> None:
        error = error_for(500, {}, _json({"detail": "x" * 5000}))
        assert error is not None
        assert error.detail is not None
        assert len(error.detail) < 400
        assert error.detail.endswith("…")

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"X-Request-Id": "a"}, "a"),
            ({"request-id": "b"}, "b"),
            ({"CF-RAY": "c"}, "c"),
            ({"x-request-id": "a", "cf-ray": "c"}, "a"),
            ({}, None),
        ],
    )
    def test_request_id(self, headers: dict[str, str], expected: str | None) -> None:
        assert request_id(headers) == expected
        error = error_for(500, headers, b"")
        assert error is not None
        assert error.request_id == expected


class TestNotJson:
    def test_html_502_page_is_a_server_error_with_its_title(self) -> None:
        error = error_for(502, {"Content-Type": "text/html"}, CLOUDFLARE_502)
        assert isinstance(error, ServerError)
        assert str(error) == "HTTP 502: 502 Bad Gateway"
        assert error.body is None
        assert "JSON" not in str(error)

    def test_html_without_title_is_reduced_to_its_text(self) -> None:
        error = error_for(503, {}, b"<body><h1>Service &amp; co</h1>\n<p>down</p></body>")
        assert str(error) == "HTTP 503: Service & co down"

    def test_plain_text(self) -> None:
        error = error_for(503, {}, b"upstream connect error or disconnect/reset before headers")
        assert str(error) == "HTTP 503: upstream connect error or disconnect/reset before headers"

    @pytest.mark.parametrize("body", [b"", b" \r\n\t"])
    def test_empty(self, body: bytes) -> None:
        error = error_for(504, {}, body)
        assert isinstance(error, ServerError)
        assert (error.title, error.detail, error.body) == (None, None, None)
        assert str(error) == "HTTP 504"

    def test_invalid_utf8(self) -> None:
        error = error_for(500, {}, b"\xff\xfeboom")
        assert error is not None
        assert error.detail is not None
        assert "boom" in error.detail

    def test_decode_json_names_what_arrived(self) -> None:
        with pytest.raises(ValueError, match="response is not JSON: '<html>"):
            decode_json(b"<html>oops</html>")


class TestRateLimit:
    def test_retry_after_header(self) -> None:
        error = error_for(429, {"Retry-After": "7"}, b'{"detail":"Request was throttled."}')
        assert isinstance(error, RateLimitError)
        assert error.retry_after == 7.0

    def test_retry_after_http_date(self) -> None:
        error = error_for(429, {"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}, b"", now=NOW)
        assert error is not None
        assert error.retry_after == pytest.approx(10.0)

    def test_body_retry_after(self) -> None:
        body = b'{"detail":"Request was throttled.","status":429,"retry_after":5}'
        assert error_for(429, {}, body).retry_after == 5.0  # type: ignore[union-attr]

    def test_detail_text(self) -> None:
        body = b'{"detail":"Request was throttled. Expected available in 1 second."}'
        assert error_for(429, {}, body).retry_after == 1.0  # type: ignore[union-attr]

    def test_no_hint(self) -> None:
        assert error_for(429, {}, b"").retry_after is None  # type: ignore[union-attr]

    def test_only_429_reads_retry_after(self) -> None:
        assert error_for(503, {"Retry-After": "7"}, b"").retry_after is None  # type: ignore[union-attr]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
PROBLEM_BODY = st.fixed_dictionaries(
    {},
    optional={
        "title": JSON,
        "detail": JSON,
        "status": JSON,
        "retry_after": JSON,
        "invalid_fields": JSON,
        "error": JSON,
    },
)


@settings(max_examples=60)
@given(
    status=st.integers(400, 599),
    body=st.binary(max_size=200)
    | JSON.map(lambda v: json.dumps(v).encode())
    | PROBLEM_BODY.map(lambda v: json.dumps(v).encode()),
    headers=st.dictionaries(
        st.sampled_from(["Retry-After", "retry-after", "X-Request-Id", "Content-Type"]),
        st.text(max_size=30),
    ),
)
def test_any_error_response_maps_to_an_api_error(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    error = error_for(status, headers, body, now=NOW)
    assert isinstance(error, APIError)
    assert error.status == status
    assert isinstance(error, ServerError) is (status >= 500)
    message = str(error)
    assert message.startswith(f"HTTP {status}")
    assert len(message) < 1000
    if isinstance(error, InvalidRequestError):
        assert all(isinstance(f, dict) for f in error.invalid_fields)
    if error.retry_after is not None:
        assert status == 429
        assert error.retry_after >= 0


# -- hostile bodies: linear time, no RecursionError --------------------------------------------

ADVERSARIAL_HTML = {
    "unclosed titles": b"<html><title>" * 800_000,
    "unclosed tags": b"<html>" + b"<a" * 5_000_000,
    "titles never closed then text": b"<title>x" * 1_250_000,
    "deep tags": b"<html><body>" + b"<div>" * 2_000_000,
}


@pytest.mark.parametrize("body", ADVERSARIAL_HTML.values(), ids=ADVERSARIAL_HTML.keys())
def test_a_10_mb_hostile_html_page_is_read_in_linear_time(body: bytes) -> None:
    # Generous: quadratic scanning took seconds for 84 KB, so 10 MB would take hours.
    started = time.perf_counter()
    error = error_for(500, {}, body)
    assert time.perf_counter() - started < 2.0
    assert isinstance(error, ServerError)
    assert len(str(error)) < 1000


def test_the_title_of_a_page_past_a_page_of_unclosed_titles() -> None:
    body = b"<html><head><title>503 Service Unavailable</title>" + b"<title>" * 1000
    assert error_for(503, {}, body).detail == "503 Service Unavailable"  # type: ignore[union-attr]


def test_an_unclosed_title_falls_back_to_the_page_text() -> None:
    error = error_for(502, {}, b"<html><title>Bad <b>gateway</b> &amp; co")
    assert error is not None
    assert error.detail == "Bad gateway & co"


HTMLISH = st.lists(
    st.sampled_from(
        ["<", ">", "<title>", "</title>", "<html>", "<TITLE x=1>", "</title >", "&amp;"]
    )
    | st.text(max_size=8),
    max_size=40,
).map(lambda parts: "".join(parts).encode())


@settings(max_examples=200)
@given(status=st.integers(300, 599), body=st.binary(max_size=300) | HTMLISH)
def test_error_for_never_raises_on_any_bytes(status: int, body: bytes) -> None:
    error = error_for(status, {}, body)
    assert isinstance(error, APIError)
    assert len(str(error)) < 1500


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_json_is_a_value_error_not_a_recursion_error(depth: int, opener: bytes) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_json(opener * depth)


def test_deep_json_error_body_still_maps_to_an_error() -> None:
    error = error_for(500, {}, b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(error, ServerError)


@settings(max_examples=30)
@given(depth=st.integers(1, 200_000), closed=st.booleans(), text=st.booleans())
def test_decode_json_raises_only_value_error(depth: int, closed: bool, text: bool) -> None:
    doc = "[" * depth + ("]" * depth if closed else "")
    with contextlib.suppress(ValueError):  # the point: nothing but ValueError comes out
        decode_json(doc if text else doc.encode())


def test_the_deep_json_error_does_not_carry_the_recursion_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply") as info:
        decode_json(b"[" * 100_000)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
