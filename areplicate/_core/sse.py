"""An incremental decoder for server-sent events (text/event-stream).

Written by hand because aiohttp has no SSE client and the one we would want must be pure: bytes in,
events out, any chunking. It follows the WHATWG "event stream interpretation" rules (CR, LF or CRLF
line ends; one leading space after the colon dropped; ``data`` lines joined with ``\\n``; comments
ignored; the last event id carried forward) with one deliberate difference: an event that named
itself but carried no ``data`` line is still delivered (with data ``""``), so a bare ``event: done``
ends a Replicate stream instead of vanishing. See docs/api-notes.md#server-sent-events.
"""

from __future__ import annotations

import attrs

__all__ = ["SSEDecoder", "SSEEvent"]


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
    """

    __slots__ = (
        "_buffer",
        "_data",
        "_event",
        "_id_buffer",
        "_last_id",
        "_pending_cr",
        "_retry",
        "_seen",
        "_started",
    )

    def __init__(self, last_event_id: str | None = None) -> None:
        self._buffer = b""
        self._pending_cr = False
        self._started = False
        self._last_id = last_event_id
        self._id_buffer = last_event_id
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self._seen = False

    @property
    def last_event_id(self) -> str | None:
        """The id to send as ``Last-Event-ID`` when reconnecting: that of the last *completed*
        event (an ``id:`` line of an event cut off mid-way does not count)."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk`` and return the events it completes (possibly none)."""
        if not chunk:
            return []
        if self._pending_cr:
            self._pending_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        data = self._buffer + chunk
        events: list[SSEEvent] = []
        start = 0
        size = len(data)
        while start < size:
            nl = data.find(b"\n", start)
            cr = data.find(b"\r", start, nl if nl >= 0 else size)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < size:
                    if data[nxt : nxt + 1] == b"\n":
                        nxt += 1
                else:
                    self._pending_cr = True
            elif nl >= 0:
                end, nxt = nl, nl + 1
            else:
                break
            event = self._line(data[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._buffer = data[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: drop any unfinished event (its id included) and get ready for the next
        connection's stream."""
        self._buffer = b""
        self._pending_cr = False
        self._started = False
        self._id_buffer = self._last_id
        self._reset()
        return []

    def _line(self, raw: bytes) -> SSEEvent | None:
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
