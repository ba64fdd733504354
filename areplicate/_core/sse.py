"""An incremental decoder for server-sent events (text/event-stream).

Written by hand because aiohttp has no SSE client and the one we would want must be pure: bytes in,
events out, any chunking. It follows the WHATWG "event stream interpretation" rules (CR, LF or CRLF
line ends; one leading space after the colon dropped; ``data`` lines joined with ``\\n``; comments
ignored; the last event id carried forward) with one deliberate difference: an event that named
itself but carried no ``data`` line is still delivered (with data ``""``), so a bare ``event: done``
ends a Replicate stream instead of vanishing. See docs/api-notes.md#server-sent-events.

Decoding is linear in the bytes fed, however they are cut: the unfinished line is kept as a list
of chunks and each chunk is scanned once. One event (its lines so far, the unfinished one
included) may hold at most ``max_event_size`` bytes; past that the stream is broken, not slow, and
the decoder raises UnexpectedResponseError rather than keep growing.
"""

from __future__ import annotations

import attrs

from areplicate._errors import UnexpectedResponseError

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "SSEDecoder", "SSEEvent"]

#: Bytes one event may take on the wire (all its lines) before the decoder gives up on the stream.
#: Replicate's events carry an output token, a log line or a file URL: 32 MiB is far beyond them.
DEFAULT_MAX_EVENT_SIZE = 32 * 1024 * 1024


@attrs.frozen
class SSEEvent:
    """One decoded event. ``id`` is the last event id seen on the stream (it carries forward)."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete.

    Call :meth:`close` at end of stream: an event not yet ended by a blank line is dropped, as the
    standard says, because the stream may have been cut in the middle of it.

    An unfinished event holding more than ``max_event_size`` bytes (a server sending data with no
    line ends, or data lines that never reach a blank line) raises UnexpectedResponseError from
    :meth:`feed`; the size is checked after each chunk, so memory stays within that plus one
    chunk. The stream is then broken: every later :meth:`feed` raises the same error until
    :meth:`close` (reconnect from :attr:`last_event_id`). If the chunk that overflowed completed
    other events first, they are returned and the error comes from the next :meth:`feed`, so
    nothing complete is lost.
    """

    __slots__ = (
        "_data",
        "_error",
        "_event",
        "_event_size",
        "_id_buffer",
        "_last_id",
        "_max",
        "_pending_cr",
        "_retry",
        "_seen",
        "_started",
        "_tail",
        "_tail_size",
    )

    def __init__(
        self, last_event_id: str | None = None, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    ) -> None:
        if isinstance(max_event_size, bool) or not isinstance(max_event_size, int):
            raise TypeError(f"max_event_size must be an int, got {max_event_size!r}")
        if max_event_size < 1:
            raise ValueError(f"max_event_size must be at least 1 byte, got {max_event_size!r}")
        self._max = max_event_size
        self._tail: list[bytes] = []  # the unfinished line, as the chunks it arrived in
        self._tail_size = 0
        self._pending_cr = False
        self._started = False
        self._error: UnexpectedResponseError | None = None
        self._last_id = last_event_id
        self._id_buffer = last_event_id
        self._reset()

    def _reset(self) -> None:
        """Forget the event being built (after a dispatch, or a blank line that ends nothing).

        The id buffer is left alone on purpose: per the SSE spec, the last event id carries over
        from one event to the next until an ``id:`` line changes it.
        """
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self._seen = False
        self._event_size = 0

    @property
    def last_event_id(self) -> str | None:
        """The id to send as ``Last-Event-ID`` when reconnecting: that of the last *completed*
        event (an ``id:`` line of an event cut off mid-way does not count)."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk`` and return the events it completes (possibly none).

        Chunks may split anywhere, a UTF-8 character or a ``\\r\\n`` included: the unfinished
        line is kept until its end arrives. Once an event has overflowed ``max_event_size``
        every later call raises the same error, so a caller cannot read on by mistake.
        """
        if self._error is not None:
            raise self._error
        if not chunk:
            return []
        if self._pending_cr:
            self._pending_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        events: list[SSEEvent] = []
        start = 0
        size = len(chunk)
        # The next LF and CR at or after ``start`` (``size``: none), each found once and reused
        # until passed, so a chunk of many CRs and no LF is still scanned in one pass.
        nl = cr = -1
        while start < size:
            if nl < start:
                nl = chunk.find(b"\n", start)
                nl = size if nl < 0 else nl
            if cr < start:
                cr = chunk.find(b"\r", start)
                cr = size if cr < 0 else cr
            end = min(nl, cr)
            if end == size:
                break
            nxt = end + 1
            if end == cr:
                if nxt == size:
                    self._pending_cr = True
                elif nl == nxt:
                    nxt += 1
            line = chunk[start:end]
            if self._tail:
                self._tail.append(line)
                line = b"".join(self._tail)
                self._tail = []
                self._tail_size = 0
            event = self._line(line)
            if event is not None:
                events.append(event)
            start = nxt
        if start < size:
            self._tail.append(chunk[start:] if start else chunk)
            self._tail_size += size - start
        if self._event_size + self._tail_size > self._max:
            self._error = self._overflow()
            if not events:
                raise self._error
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: drop any unfinished event (its id included) and get ready for the next
        connection's stream."""
        self._tail = []
        self._tail_size = 0
        self._pending_cr = False
        self._started = False
        self._error = None
        self._id_buffer = self._last_id
        self._reset()
        return []

    def _overflow(self) -> UnexpectedResponseError:
        """Give up on the stream: free what the event holds, say why."""
        size = self._event_size + self._tail_size
        self._tail = []
        self._tail_size = 0
        self._id_buffer = self._last_id
        self._reset()
        return UnexpectedResponseError(
            200,
            "Unexpected response",
            f"a server-sent event grew past {self._max} bytes ({size} so far) without ending: "
            "the stream is not a valid event stream (is the URL a stream URL?)",
        )

    def _line(self, raw: bytes) -> SSEEvent | None:
        """Apply one complete line (without its line ending); returns an event when the line is blank.

        Per the SSE spec: a leading BOM on the very first line is dropped, ``:`` lines are comments,
        one space after the colon is stripped, an ``id`` holding NUL is ignored, and a ``retry`` that
        is not all ASCII digits is ignored. Unknown fields are ignored too. Only ``data`` counts
        toward the event size limit, since only it accumulates across lines.
        """
        if not self._started:
            self._started = True
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._event_size += len(raw) + 1  # only data accumulates; other fields replace
            self._seen = True
        elif name == "event":
            self._event = value
            self._seen = True
        elif name == "id" and "\x00" not in value:
            self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():  # "²" is a digit to isdigit()
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        """End the current event at a blank line: the event, or ``None`` if no data or event line came.

        The last event id is updated even for an empty event, as the spec says, so an ``id:`` line
        followed by a blank line moves the reconnection point without producing an event.
        """
        self._last_id = self._id_buffer
        if not self._seen:
            self._reset()
            return None
        event = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=self._retry,
        )
        self._reset()
        return event
