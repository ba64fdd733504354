"""API timestamps (0-9 fractional digits, Z or offsets) and Cancel-After durations."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from areplicate._core.times import (
    _parse_general,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)

UTC = dt.timezone.utc
NAIVE = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 30))
FRACTION = st.text(alphabet="0123456789", max_size=9)
OFFSET = st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59), st.booleans())


def _text(moment: dt.datetime, fraction: str, zone: str) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        + (f".{fraction}" if fraction else "")
        + zone
    )


class TestParseTimestamp:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # both seen in real traffic (docs/api-notes.md#conventions)
            ("2023-08-16T18:57:08.36078514Z", dt.datetime(2023, 8, 16, 18, 57, 8, 360785, UTC)),
            ("2024-10-04T18:14:55.674Z", dt.datetime(2024, 10, 4, 18, 14, 55, 674000, UTC)),
            ("2024-10-04T18:14:55Z", dt.datetime(2024, 10, 4, 18, 14, 55, tzinfo=UTC)),
            ("2024-10-04T18:14:55.123456789Z", dt.datetime(2024, 10, 4, 18, 14, 55, 123456, UTC)),
            ("2024-10-04 18:14:55+00:00", dt.datetime(2024, 10, 4, 18, 14, 55, tzinfo=UTC)),
            ("2024-10-04T18:14:55", dt.datetime(2024, 10, 4, 18, 14, 55, tzinfo=UTC)),
        ],
    )
    def test_examples(self, text: str, expected: dt.datetime) -> None:
        parsed = parse_timestamp(text)
        assert parsed == expected
        assert parsed.utcoffset() == dt.timedelta(0)

    @given(moment=NAIVE, fraction=FRACTION, z=st.sampled_from(["Z", "z", ""]))
    def test_utc_with_any_number_of_fractional_digits(
        self, moment: dt.datetime, fraction: str, z: str
    ) -> None:
        moment = moment.replace(microsecond=0)
        parsed = parse_timestamp(_text(moment, fraction, z))
        micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
        assert parsed == moment.replace(microsecond=micro, tzinfo=UTC)
        assert parsed.tzinfo is not None

    @given(moment=NAIVE, fraction=FRACTION, offset=OFFSET)
    def test_offsets(
        self, moment: dt.datetime, fraction: str, offset: tuple[str, int, int, bool]
    ) -> None:
        sign, hours, minutes, colon = offset
        zone = f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"
        moment = moment.replace(microsecond=0)
        delta = dt.timedelta(hours=hours, minutes=minutes)
        tz = dt.timezone(delta if sign == "+" else -delta)
        parsed = parse_timestamp(_text(moment, fraction, zone))
        micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
        assert parsed == moment.replace(microsecond=micro, tzinfo=tz)
        assert parsed.utcoffset() == tz.utcoffset(None)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "yesterday",
            "2024-10-04",
            "2024-10-04T18:14",
            "2024-13-04T18:14:55Z",
            "2024-02-30T18:14:55Z",
            "2024-10-04T25:14:55Z",
            "2024-10-04T18:14:55.Z",
            "2024-10-04T18:14:55.1234567890Z",
            "2024-10-04T18:14:55+24:00",
            "2024-10-04T18:14:55 Z",
        ],
    )
    def test_garbage_raises_value_error(self, text: str) -> None:
        with pytest.raises(ValueError, match="timestamp"):
            parse_timestamp(text)

    @given(
        moment=NAIVE,
        dot=st.sampled_from([".", ""]),
        fraction=st.text(alphabet="0123456789", max_size=12),
        noise=st.lists(st.tuples(st.integers(0, 40), st.sampled_from("0123456789.:-+TZz ,٣x"))),
    )
    def test_the_fast_path_reads_exactly_what_the_general_parser_reads(
        self, moment: dt.datetime, dot: str, fraction: str, noise: list[tuple[int, str]]
    ) -> None:
        # The API's own shape, then corrupted here and there: the C parser the fast path uses
        # accepts forms of its own (``55.Z`` on 3.11), which must not leak through.
        chars = list(_text(moment, "", "") + dot + fraction + "Z")
        for where, char in noise:
            chars[min(where, len(chars) - 1)] = char
        text = "".join(chars)
        try:
            expected: dt.datetime | None = _parse_general(text)
        except ValueError:
            expected = None
        if expected is None:
            with pytest.raises(ValueError):
                parse_timestamp(text)
        else:
            assert parse_timestamp(text) == expected
            assert parse_timestamp(text).utcoffset() == expected.utcoffset()

    @given(st.text(max_size=40))
    def test_any_text_parses_or_raises_value_error(self, text: str) -> None:
        try:
            parsed = parse_timestamp(text)
        except ValueError:
            return
        assert parsed.tzinfo is not None

    @given(
        st.datetimes(
            min_value=dt.datetime(1000, 1, 2),
            max_value=dt.datetime(9999, 12, 30),
            timezones=st.builds(
                lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-1439, 1439)
            ),
        )
    )
    def test_format_round_trips(self, moment: dt.datetime) -> None:
        text = format_timestamp(moment)
        assert text.endswith("Z")
        assert parse_timestamp(text) == moment

    def test_format_takes_naive_as_utc(self) -> None:
        naive = dt.datetime(2024, 1, 2, 3, 4, 5, 6)
        assert format_timestamp(naive) == "2024-01-02T03:04:05.000006Z"


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("1h30m45s", 5445.0),
            ("1h30m", 5400.0),
            ("2m0.5s", 120.5),
            ("90", 90.0),
            (" 12.5 ", 12.5),
            (90, 90.0),
            (1.5, 1.5),
            (dt.timedelta(minutes=2), 120.0),
        ],
    )
    def test_accepted_forms(self, text: str | float | dt.timedelta, seconds: float) -> None:
        assert parse_duration(text) == seconds

    @given(
        h=st.none() | st.integers(0, 99),
        m=st.none() | st.integers(0, 999),
        s=st.none() | st.integers(0, 9999),
    )
    def test_any_combination_of_units(self, h: int | None, m: int | None, s: int | None) -> None:
        text = "".join(f"{v}{unit}" for v, unit in ((h, "h"), (m, "m"), (s, "s")) if v is not None)
        if not text:
            with pytest.raises(ValueError, match="not a duration"):
                parse_duration(text)
            return
        assert parse_duration(text) == (h or 0) * 3600 + (m or 0) * 60 + (s or 0)

    @pytest.mark.parametrize(
        "value",
        ["", "s", "5 minutes", "5M", "1m1h", "1.5h", "-5s", "-5", "nan", "inf", "-inf",
         float("nan"), float("inf"), -1, dt.timedelta(seconds=-1), True, None, [5]],
    )  # fmt: skip
    def test_anything_else_raises_value_error_naming_the_forms(self, value: object) -> None:
        with pytest.raises(ValueError, match="'30s', '5m' or '1h30m45s'"):
            parse_duration(value)  # type: ignore[arg-type]

    @given(st.text(max_size=20))
    def test_any_text_gives_a_finite_duration_or_value_error(self, text: str) -> None:
        try:
            seconds = parse_duration(text)
        except ValueError:
            return
        assert math.isfinite(seconds)
        assert seconds >= 0

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(0, "0s"), (0.1, "1s"), (59, "59s"), (60, "1m"), (61, "1m1s"), (3600, "1h"),
         (3601, "1h1s"), (5445, "1h30m45s"), (86400, "24h")],
    )  # fmt: skip
    def test_format_duration(self, seconds: float, text: str) -> None:
        assert format_duration(seconds) == text

    @given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
    def test_format_then_parse_rounds_up_to_whole_seconds(self, seconds: float) -> None:
        assert parse_duration(format_duration(seconds)) == math.ceil(seconds)

    @pytest.mark.parametrize("seconds", [-1, -0.5, float("nan"), float("inf")])
    def test_format_rejects_negative_and_non_finite(self, seconds: float) -> None:
        with pytest.raises(ValueError, match="finite number of seconds"):
            format_duration(seconds)
