"""Retry-After parsing, the retry decision table and the poll schedule."""

from __future__ import annotations

import datetime as dt
import email.utils
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from areplicate import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PollSchedule,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)
from areplicate._core.retry import (
    MAX_RETRY_AFTER,
    header,
    maybe_processed,
    parse_retry_after,
    retry_after_from,
    retry_decision,
)

UTC = dt.timezone.utc
NOW = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example date
NOWS = st.floats(min_value=0, max_value=4e9, allow_nan=False)
MOMENTS = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


class TestParseRetryAfter:
    @given(st.integers(min_value=0, max_value=10**9), NOWS)
    def test_delta_seconds(self, seconds: int, now: float) -> None:
        assert parse_retry_after(str(seconds), now=now) == seconds

    @given(st.floats(min_value=0, max_value=1e6, allow_nan=False), NOWS)
    def test_fractional_seconds(self, seconds: float, now: float) -> None:
        assert parse_retry_after(repr(seconds), now=now) == seconds

    @given(MOMENTS, NOWS)
    def test_http_dates_are_relative_to_now(self, moment: dt.datetime, now: float) -> None:
        text = email.utils.format_datetime(moment, usegmt=True)
        assert parse_retry_after(text, now=now) == pytest.approx(max(0.0, moment.timestamp() - now))

    @pytest.mark.parametrize(
        "text",
        [
            "Sun, 06 Nov 1994 08:49:47 GMT",  # IMF-fixdate
            "Sunday, 06-Nov-94 08:49:47 GMT",  # obsolete RFC 850 form
            "Sun Nov  6 08:49:47 1994",  # obsolete asctime form
        ],
    )
    def test_all_three_http_date_forms(self, text: str) -> None:
        assert parse_retry_after(text, now=NOW) == 10.0

    def test_past_dates_and_negative_seconds_mean_now(self) -> None:
        assert parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now=NOW) == 0.0
        assert parse_retry_after("-3", now=NOW) == 0.0

    @pytest.mark.parametrize("text", [None, "", "soon", "nan", "inf", "-inf", "1e999", "5 s"])
    def test_garbage_gives_none(self, text: str | None) -> None:
        assert parse_retry_after(text, now=NOW) is None

    @given(st.text(max_size=40), NOWS)
    def test_never_raises(self, text: str, now: float) -> None:
        seconds = parse_retry_after(text, now=now)
        assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


class TestRetryAfterFrom:
    def test_header_wins(self) -> None:
        body = {
            "detail": "Request was throttled. Expected available in 9 seconds.",
            "retry_after": 8,
        }
        assert retry_after_from({"Retry-After": "3"}, body, now=NOW) == 3.0

    def test_header_name_is_case_insensitive(self) -> None:
        assert retry_after_from({"RETRY-AFTER": "4"}, None, now=NOW) == 4.0

    def test_body_retry_after_field(self) -> None:
        # the low-credit form: docs/api-notes.md#rate-limits
        body = {"detail": "Request was throttled.", "status": 429, "retry_after": 5}
        assert retry_after_from({}, body, now=NOW) == 5.0

    @pytest.mark.parametrize(
        ("detail", "seconds"),
        [
            ("Request was throttled. Expected available in 1 second.", 1.0),
            ("Request was throttled. Expected available in 12 seconds.", 12.0),
            ("Request was throttled. Your rate limit resets in ~30s.", 30.0),
            ("Request was throttled.", None),
        ],
    )
    def test_detail_text(self, detail: str, seconds: float | None) -> None:
        assert retry_after_from({}, {"detail": detail}, now=NOW) == seconds

    @pytest.mark.parametrize("value", [True, -1, "5", None, [5]])
    def test_nonsense_retry_after_field_is_ignored(self, value: object) -> None:
        assert retry_after_from({}, {"retry_after": value}, now=NOW) is None

    def test_garbage_header_falls_back_to_body(self) -> None:
        assert retry_after_from({"retry-after": "soon"}, {"retry_after": 2}, now=NOW) == 2.0

    @pytest.mark.parametrize("body", [None, [], "throttled", 429])
    def test_no_hint_at_all(self, body: object) -> None:
        assert retry_after_from({}, body, now=NOW) is None


def _api(cls: type[APIError], status: int, retry_after: float | None = None) -> APIError:
    return cls(status, "t", "d", retry_after=retry_after)


class TestRetryDecision:
    @pytest.mark.parametrize("idempotent", [True, False])
    def test_429_is_retried_for_everything_honouring_retry_after(self, idempotent: bool) -> None:
        assert retry_decision(_api(RateLimitError, 429, 7.0), idempotent=idempotent) == 7.0
        assert retry_decision(_api(RateLimitError, 429), idempotent=idempotent) is True

    @pytest.mark.parametrize("idempotent", [True, False])
    def test_429_asking_for_too_long_a_wait_is_waited_up_to_the_cap(self, idempotent: bool) -> None:
        error = _api(RateLimitError, 429, MAX_RETRY_AFTER * 30)
        assert retry_decision(error, idempotent=idempotent) == MAX_RETRY_AFTER

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_server_errors_retried_for_reads_only(self, status: int) -> None:
        assert retry_decision(_api(ServerError, status), idempotent=True) is True
        assert retry_decision(_api(ServerError, status), idempotent=False) is False

    @pytest.mark.parametrize("status", [200, 201])
    def test_an_unreadable_2xx_is_retried_for_reads_only(self, status: int) -> None:
        error = _api(UnexpectedResponseError, status)
        assert retry_decision(error, idempotent=True) is True
        assert retry_decision(error, idempotent=False) is False

    @pytest.mark.parametrize(
        "error",
        [
            APIConnectionError("refused", sent=False),
            APITimeoutError("connect timeout", sent=False),
        ],
    )
    def test_never_sent_is_retried_even_for_a_create(self, error: Exception) -> None:
        assert retry_decision(error, idempotent=False) is True
        assert retry_decision(error, idempotent=True) is True

    @pytest.mark.parametrize(
        "error",
        [
            APIConnectionError("reset mid-response", sent=True),
            APITimeoutError("read timeout", sent=True),
        ],
    )
    def test_maybe_sent_is_retried_for_reads_but_not_for_a_create(self, error: Exception) -> None:
        assert retry_decision(error, idempotent=True) is True
        assert retry_decision(error, idempotent=False) is False

    @pytest.mark.parametrize(
        "error",
        [
            _api(AuthenticationError, 401),
            _api(PaymentRequiredError, 402),
            _api(NotFoundError, 404),
            _api(InvalidRequestError, 422),
            _api(APIError, 400),
            _api(APIError, 409),
            _api(ServerError, 501),
            _api(APIError, 307),
            ValueError("a bug of ours"),
            RuntimeError("client closed"),
        ],
    )
    @pytest.mark.parametrize("idempotent", [True, False])
    def test_everything_else_is_raised(self, error: Exception, idempotent: bool) -> None:
        assert retry_decision(error, idempotent=idempotent) is False


class TestMaybeProcessed:
    @pytest.mark.parametrize(
        "error",
        [
            APIConnectionError("reset mid-response", sent=True),
            APITimeoutError("read timeout", sent=True),
            _api(ServerError, 500),
            _api(ServerError, 503),
            _api(APIError, 302),
            _api(UnexpectedResponseError, 201),
        ],
        ids=repr,
    )
    def test_ambiguous_outcomes(self, error: Exception) -> None:
        assert maybe_processed(error) is True

    @pytest.mark.parametrize(
        "error",
        [
            APIConnectionError("refused", sent=False),
            APITimeoutError("connect timeout", sent=False),
            _api(AuthenticationError, 401),
            _api(PaymentRequiredError, 402),
            _api(NotFoundError, 404),
            _api(InvalidRequestError, 422),
            _api(RateLimitError, 429),
            ValueError("a bug of ours"),
        ],
        ids=repr,
    )
    def test_refused_or_never_sent(self, error: Exception) -> None:
        assert maybe_processed(error) is False


class TestPollSchedule:
    def test_defaults_start_fast_and_cap(self) -> None:
        schedule = PollSchedule()
        assert schedule.interval(0) == schedule.first == 0.1
        assert schedule.interval(10) == pytest.approx(1.1)
        assert schedule.interval(10_000) == schedule.cap == 5.0
        assert schedule.interval(-5) == schedule.first

    @given(
        first=st.floats(0.001, 10),
        ratio=st.floats(0, 2),
        extra=st.floats(0, 100),
        a=st.floats(0, 1e6),
        b=st.floats(0, 1e6),
    )
    def test_bounded_and_non_decreasing(
        self, first: float, ratio: float, extra: float, a: float, b: float
    ) -> None:
        schedule = PollSchedule(first=first, ratio=ratio, cap=first + extra)
        lo, hi = sorted((a, b))
        assert first <= schedule.interval(lo) <= schedule.interval(hi) <= schedule.cap

    @pytest.mark.parametrize(
        "kwargs", [{"first": 0}, {"first": -1}, {"ratio": -0.1}, {"first": 2, "cap": 1}]
    )
    def test_nonsense_is_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="PollSchedule needs"):
            PollSchedule(**kwargs)


class TestHeader:
    def test_case_insensitive_over_a_plain_dict(self) -> None:
        headers = {"X-Request-Id": "abc"}
        assert header(headers, "x-request-id") == "abc"
        assert header(headers, "X-REQUEST-ID") == "abc"
        assert header(headers, "missing") is None
