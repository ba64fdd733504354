"""The SSE decoder: WHATWG event-stream rules, any chunking, any line ending."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from areplicate import UnexpectedResponseError
from areplicate._core.sse import DEFAULT_MAX_EVENT_SIZE, SSEDecoder, SSEEvent


def decode(
    stream: bytes, cuts: list[int] | None = None, last_event_id: str | None = None
) -> list[SSEEvent]:
    """Feed ``stream`` cut at ``cuts`` (byte offsets), then close."""
    decoder = SSEDecoder(last_event_id)
    bounds = [0, *sorted(cuts or []), len(stream)]
    events: list[SSEEvent] = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(stream[start:end])
    events += decoder.close()
    return events


REPLICATE_STREAM = (
    b": hi\n\n"
    b"event: output\nid: 1690212292:0\ndata: Once\n\n"
    b"event: output\nid: 1690212292:1\ndata:  upon\n\n"
    b"event: logs\nid: 1690212292:2\ndata: step 1/2\ndata: step 2/2\n\n"
    b"event: done\nid: 1690212292:3\ndata: {}\n\n"
)


class TestExamples:
    def test_a_replicate_stream(self) -> None:
        assert decode(REPLICATE_STREAM) == [
            SSEEvent("output", "Once", "1690212292:0"),
            SSEEvent("output", " upon", "1690212292:1"),  # only one leading space is dropped
            SSEEvent("logs", "step 1/2\nstep 2/2", "1690212292:2"),
            SSEEvent("done", "{}", "1690212292:3"),
        ]

    @pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
    def test_cr_lf_and_crlf_line_ends(self, newline: bytes) -> None:
        assert decode(REPLICATE_STREAM.replace(b"\n", newline)) == decode(REPLICATE_STREAM)

    def test_mixed_line_ends(self) -> None:
        stream = b"data: a\r\ndata: b\rdata: c\n\r\nevent: x\r\rdata: d\n\n"
        assert decode(stream) == [
            SSEEvent("message", "a\nb\nc"),
            SSEEvent("x", ""),
            SSEEvent("message", "d"),
        ]

    def test_crlf_split_between_chunks_is_one_line_end(self) -> None:
        decoder = SSEDecoder()
        assert decoder.feed(b"data: a\r") == []
        assert decoder.feed(b"\n") == []
        assert decoder.feed(b"\r") == [SSEEvent("message", "a")]
        assert decoder.feed(b"\ndata: b\n\n") == [SSEEvent("message", "b")]

    def test_multi_line_data_is_joined_with_newlines(self) -> None:
        stream = b"data: first\ndata:\ndata: third\n\n"
        assert decode(stream) == [SSEEvent("message", "first\n\nthird")]

    def test_comments_are_ignored(self) -> None:
        stream = b": hi\n:another\ndata: x\n: in the middle\ndata: y\n\n"
        assert decode(stream) == [SSEEvent("message", "x\ny")]

    def test_a_leading_bom_is_dropped(self) -> None:
        assert decode(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("message", "x")]

    def test_a_bom_split_across_chunks_is_dropped(self) -> None:
        assert decode(b"\xef\xbb\xbfdata: x\n\n", cuts=[1, 2]) == [SSEEvent("message", "x")]

    def test_only_the_first_bom_is_special(self) -> None:
        # a second BOM makes the field name unknown, so the line is ignored
        assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [
            SSEEvent("message", "y")
        ]

    def test_id_carries_forward_and_can_be_cleared(self) -> None:
        stream = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"
        assert decode(stream) == [
            SSEEvent("message", "a", "1"),
            SSEEvent("message", "b", "1"),
            SSEEvent("message", "c", ""),
        ]

    def test_resumed_stream_starts_from_the_last_event_id(self) -> None:
        decoder = SSEDecoder(last_event_id="7:3")
        assert decoder.last_event_id == "7:3"
        assert decoder.feed(b"data: x\n\n") == [SSEEvent("message", "x", "7:3")]
        decoder.feed(b"id: 7:4\n")
        assert decoder.last_event_id == "7:3"  # not until the event is complete
        decoder.feed(b"\n")
        assert decoder.last_event_id == "7:4"

    def test_an_event_cut_off_mid_way_does_not_move_the_resume_point(self) -> None:
        decoder = SSEDecoder()
        decoder.feed(b"id: 1:0\ndata: a\n\nevent: output\nid: 1:1\nda")
        decoder.close()
        assert decoder.last_event_id == "1:0"
        assert decoder.feed(b"\xef\xbb\xbfid: 1:1\ndata: b\n\n") == [
            SSEEvent("message", "b", "1:1")
        ]

    def test_id_with_nul_is_ignored(self) -> None:
        assert decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")[-1] == SSEEvent(
            "message", "b", "1"
        )

    def test_field_without_colon_and_unknown_fields(self) -> None:
        assert decode(b"data\ndata\nfoo: bar\n\n") == [SSEEvent("message", "\n")]

    def test_colon_inside_the_value_is_kept(self) -> None:
        assert decode(b'data: {"a": "b:c"}\n\n') == [SSEEvent("message", '{"a": "b:c"}')]

    def test_named_event_without_data_is_still_delivered(self) -> None:
        # a deliberate difference from the standard: `event: done` alone must end the stream
        assert decode(b"event: done\n\n") == [SSEEvent("done", "")]

    def test_blank_lines_alone_deliver_nothing(self) -> None:
        assert decode(b"\n\n\r\n\r\r") == []
        assert decode(b"id: 5\n\n") == []

    def test_retry(self) -> None:
        assert decode(b"retry: 3000\ndata: x\n\n") == [SSEEvent("message", "x", None, 3000)]
        for bad in ("retry: 3s", "retry: -1", "retry: ²", "retry: ٣", "retry:"):
            assert decode(f"{bad}\ndata: x\n\n".encode()) == [SSEEvent("message", "x")]

    def test_unfinished_event_is_dropped_at_close(self) -> None:
        decoder = SSEDecoder()
        assert decoder.feed(b"data: complete\n\ndata: cut off") == [SSEEvent("message", "complete")]
        assert decoder.close() == []
        assert decoder.feed(b"data: next\n\n") == [SSEEvent("message", "next")]

    def test_utf8_split_inside_a_character(self) -> None:
        stream = "data: héllo — 世界\n\n".encode()
        for cut in range(len(stream)):
            assert decode(stream, cuts=[cut]) == [SSEEvent("message", "héllo — 世界")]

    def test_invalid_utf8_is_replaced_not_raised(self) -> None:
        assert decode(b"data: \xff\n\n") == [SSEEvent("message", "\ufffd")]


TOKENS = st.sampled_from(
    [b"data", b"event", b"id", b"retry", b":", b": ", b" ", b"\n", b"\r", b"\r\n", b"x", b"42",
     b"\xef\xbb\xbf", "é".encode(), "²".encode(), b"\x00", b"\xff", b"output", b"done", b"{}"]
)  # fmt: skip


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    stream = b"".join(draw(st.lists(TOKENS, max_size=60)))
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=12))
    return stream, cuts


@given(chunked())
def test_any_chunking_gives_the_same_events(case: tuple[bytes, list[int]]) -> None:
    stream, cuts = case
    assert decode(stream, cuts) == decode(stream)


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_arbitrary_bytes_never_raise(stream: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(stream)]
    assert decode(stream, cuts) == decode(stream)


LINE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=12)
EVENT = st.fixed_dictionaries(
    {"data": st.lists(LINE, min_size=1, max_size=3)},
    optional={"event": LINE.filter(bool), "id": LINE.filter(lambda s: "\x00" not in s)},
)


@st.composite
def encoded(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent], list[int]]:
    events = draw(st.lists(EVENT, max_size=6))
    bom = draw(st.booleans())
    lines: list[str] = [": hi"] if draw(st.booleans()) else []
    expected: list[SSEEvent] = []
    last_id = None
    for ev in events:
        if "event" in ev:
            lines.append(f"event: {ev['event']}")
        if "id" in ev:
            lines.append(f"id: {ev['id']}")
            last_id = ev["id"]
        lines += [f"data: {d}" for d in ev["data"]]
        lines.append("")
        expected.append(SSEEvent(ev.get("event", "message"), "\n".join(ev["data"]), last_id))
    ends = draw(
        st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=len(lines), max_size=len(lines))
    )
    for i in range(1, len(lines)):
        if ends[i - 1] == "\r" and not lines[i] and ends[i].startswith("\n"):
            ends[i - 1] = "\r\n"  # "\r" + "" + "\n" would read as one CRLF, not a blank line
    stream = ("\ufeff" if bom else "") + "".join(
        line + end for line, end in zip(lines, ends, strict=True)
    )
    raw = stream.encode()
    cuts = draw(st.lists(st.integers(0, len(raw)), max_size=10))
    return raw, expected, cuts


@given(encoded())
def test_encoded_events_decode_back_under_any_chunking(
    case: tuple[bytes, list[SSEEvent], list[int]],
) -> None:
    stream, expected, cuts = case
    assert decode(stream, cuts) == expected


# -- hostile streams: linear time, bounded memory ------------------------------------------------


def _feed_in(decoder: SSEDecoder, stream: bytes, size: int) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for start in range(0, len(stream), size):
        events += decoder.feed(stream[start : start + size])
    return events


class TestHostileStreams:
    def test_a_10_mb_line_fed_in_small_chunks_is_decoded_in_linear_time(self) -> None:
        stream = b"data: " + b"x" * 10_000_000 + b"\n\n"
        started = time.perf_counter()
        events = _feed_in(SSEDecoder(), stream, 1024)
        # Generous: re-scanning the buffer on each chunk took minutes for this.
        assert time.perf_counter() - started < 5.0
        assert [len(e.data) for e in events] == [10_000_000]

    def test_a_chunk_of_carriage_returns_is_scanned_once(self) -> None:
        started = time.perf_counter()
        assert SSEDecoder().feed(b"\r" * 1_000_000 + b"data: x\n\n") == [SSEEvent("message", "x")]
        assert time.perf_counter() - started < 5.0

    def test_a_line_that_never_ends_is_refused_not_buffered_forever(self) -> None:
        decoder = SSEDecoder(max_event_size=1000)
        assert decoder.feed(b"data: " + b"x" * 900) == []
        with pytest.raises(UnexpectedResponseError, match="1000 bytes") as info:
            decoder.feed(b"x" * 200)
        assert info.value.status == 200
        # the stream is broken until the caller reconnects
        with pytest.raises(UnexpectedResponseError):
            decoder.feed(b"\n\ndata: ok\n\n")
        decoder.close()
        assert decoder.feed(b"id: 2\ndata: ok\n\n") == [SSEEvent("message", "ok", "2")]

    def test_the_default_limit_bounds_a_stream_without_newlines(self) -> None:
        decoder = SSEDecoder()
        chunk = b"x" * (1024 * 1024)
        for _ in range(DEFAULT_MAX_EVENT_SIZE // len(chunk)):
            assert decoder.feed(chunk) == []
        with pytest.raises(UnexpectedResponseError, match="without ending"):
            decoder.feed(chunk)

    def test_data_lines_without_a_blank_line_count_towards_the_limit(self) -> None:
        decoder = SSEDecoder(max_event_size=100)
        for _ in range(5):
            assert decoder.feed(b"data: 0123456789\n") == []
        with pytest.raises(UnexpectedResponseError):
            decoder.feed(b"data: 0123456789\n" * 5)

    def test_events_completed_before_the_overflow_are_returned_first(self) -> None:
        decoder = SSEDecoder(max_event_size=100)
        assert decoder.feed(b"id: 1\ndata: a\n\ndata: " + b"x" * 200) == [
            SSEEvent("message", "a", "1")
        ]
        with pytest.raises(UnexpectedResponseError):
            decoder.feed(b"\n\n")
        assert decoder.last_event_id == "1"  # the dropped event never moved the resume point

    def test_close_forgets_an_overflow(self) -> None:
        decoder = SSEDecoder(max_event_size=10)
        decoder.feed(b"data: a\n\ndata: " + b"x" * 50)
        decoder.close()
        assert decoder.feed(b"data: b\n\n") == [SSEEvent("message", "b")]

    @pytest.mark.parametrize("bad", [0, -1, True, 1.5])
    def test_the_limit_must_be_a_positive_whole_number(self, bad: object) -> None:
        with pytest.raises((TypeError, ValueError)):
            SSEDecoder(max_event_size=bad)  # type: ignore[arg-type]


@given(chunked(), st.integers(1, 64))
def test_a_limit_above_every_event_changes_nothing(
    case: tuple[bytes, list[int]], limit: int
) -> None:
    stream, cuts = case
    decoder = SSEDecoder(max_event_size=len(stream) + 1)
    bounds = [0, *sorted(cuts), len(stream)]
    events: list[SSEEvent] = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(stream[start:end])
    assert events == decode(stream)
