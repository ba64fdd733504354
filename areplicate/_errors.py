"""Every exception areplicate raises, in one tree.

::

    ReplicateError
    ├── APIError                      the API answered with an error (or with something unreadable)
    │   ├── AuthenticationError       401: no token, or a bad one
    │   ├── PaymentRequiredError      402: out of credit
    │   ├── NotFoundError             404
    │   ├── InvalidRequestError       422: bad input or version (``invalid_fields``)
    │   ├── RateLimitError            429 (``retry_after``)
    │   ├── ServerError               5xx
    │   └── UnexpectedResponseError   a 2xx whose body is not what the API documents
    ├── APIConnectionError            no answer: DNS, refused, reset, dropped mid-body
    │   └── APITimeoutError
    ├── PredictionFailedError         the model ran and failed (``.prediction``)
    │   └── PredictionCanceledError   canceled or aborted before it finished
    ├── WaitTimeoutError              a ``timeout=`` of run or wait ran out (``.prediction``: the last state)
    ├── InputValidationError          the input breaks the model's schema, caught before sending
    ├── InvalidReferenceError         a model reference that is none of the accepted forms (also a ValueError)
    └── WebhookVerificationError      a webhook delivery whose signature does not check out

The three that carry a prediction (PredictionFailedError, PredictionCanceledError,
WaitTimeoutError) are defined beside Prediction in ``areplicate._models``, so that
``Prediction.raise_for_status`` and these errors need no import of each other's module.

The API token never appears in any of these: messages are built from the API's own ``title`` and
``detail`` and from URLs, which never carry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "InputValidationError",
    "InvalidReferenceError",
    "InvalidRequestError",
    "NotFoundError",
    "PaymentRequiredError",
    "RateLimitError",
    "ReplicateError",
    "ServerError",
    "UnexpectedResponseError",
    "WebhookVerificationError",
]


#: Added to the message of every error that leaves a create's outcome unknown.
MAYBE_CREATED_HINT = (
    "the API may have processed this create, so the prediction may exist and be running: look it "
    "up with `client.predictions.find(input, created_after=...)` before creating it again"
)


class ReplicateError(Exception):
    """Base class of every error areplicate raises: catch this to catch them all.

    ``maybe_created`` is True on an error raised by a create (a prediction, training or deployment
    prediction) after the request may have been processed: a dropped connection after sending, a
    timeout, a 5xx, a 2xx whose body could not be read. The prediction may then exist and be billed,
    so look it up (``predictions.find``) instead of creating it again; the message says so too. It is
    False on every error that proves nothing was created (a 4xx such as 422 or 429, a connection that
    never opened, a bad argument).
    """

    maybe_created: bool = False

    def __str__(self) -> str:
        """The message, with the "may have been created" hint appended when ``maybe_created`` is set.

        The hint is added here, not baked into ``args``, so marking an error after it was raised (the
        session does, for creates) changes what it prints.
        """
        text = super().__str__()
        if self.maybe_created:
            text = f"{text} ({MAYBE_CREATED_HINT})"
        return text

    def mark_maybe_created(self) -> None:
        """Record that this error came from a create that may have been processed (see the class).

        Set where a create's error surfaces (the session, the decoding of a create's response); it
        survives pickling (see :func:`state_of`).
        """
        self.maybe_created = True


class APIError(ReplicateError):
    """The API answered with an HTTP error (or a body we could not read).

    ``status`` is the HTTP status; ``title`` and ``detail`` come from the problem+json body when the
    API sent one; ``request_id`` is the API's request id header, worth quoting to Replicate support.
    ``body`` is the parsed body (or ``None`` when it was not JSON).
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        request_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        """Keep the response's parts as attributes; the message is built from them once, here.

        ``body`` is kept as the API sent it: it may name the input the request carried, so do not log
        it wholesale.
        """
        self.status = status
        self.title = title
        self.detail = detail
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        """``HTTP <status>: <title>: <detail> (request id …)``, each part only when the API sent it."""
        parts = [f"HTTP {self.status}"]
        if self.title:
            parts.append(self.title)
        text = ": ".join(parts)
        if self.detail:
            text = f"{text}: {self.detail.strip()}"
        if self.request_id:
            text = f"{text} (request id {self.request_id})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by the constructor's arguments plus :func:`state_of`, so an error crossing a process
        boundary (a worker pool) arrives with its status, body and flags intact.
        """
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status,
                self.title,
                self.detail,
                self.request_id,
                self.body,
                self.retry_after,
            ),
            state_of(self),
        )


def state_of(error: ReplicateError) -> dict[str, Any]:
    """Pickle state beyond the constructor's arguments: ``maybe_created``, a 404's ``target``.

    Both are class-level defaults set per instance after construction, so the default
    ``__reduce__`` would drop them.
    """
    state: dict[str, Any] = {"maybe_created": True} if error.maybe_created else {}
    target = getattr(error, "target", None)
    if target is not None:
        state["target"] = target
    return state


def _rebuild_api_error(
    cls: type[APIError],
    status: int,
    title: str | None,
    detail: str | None,
    request_id: str | None,
    body: Any,
    retry_after: float | None,
) -> APIError:
    """Unpickle an APIError subclass through its real constructor (see :meth:`APIError.__reduce__`)."""
    return cls(status, title, detail, request_id=request_id, body=body, retry_after=retry_after)


class AuthenticationError(APIError):
    """401: the token is missing or not valid. Check ``REPLICATE_API_TOKEN`` or ``api_token=``.

    Never retried, and in a fan-out it stops every item at once: all would get the same answer.
    """


class PaymentRequiredError(APIError):
    """402: the account is out of credit. Retrying will not help; add credit first.

    In a fan-out it stops every item at once, as a 401 does.
    """


class NotFoundError(APIError):
    """404: no such prediction, model, version, file or deployment (or no permission to see it).

    ``target`` names what a create ran on (``"model acme/hello"``) when this 404 answered the
    create: then that model, version or deployment is what does not exist, and every create of it
    gets the same answer. It is None on any other 404 (an unknown prediction id, say).
    """

    target: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.target is not None:
            # The API's own text ("The requested resource could not be found") is the same for an
            # unknown prediction id: say which thing it was.
            text = f"{self.target} not found (or this token cannot see it): {text}"
        return text


class InvalidRequestError(APIError):
    """422: the API rejected the request, usually the input or the version.

    ``invalid_fields`` lists the API's per-field complaints (each a dict with ``type``, ``field`` and
    ``description``); it is empty when the API gave only a ``detail``.
    """

    @property
    def invalid_fields(self) -> list[dict[str, Any]]:
        """The API's per-field complaints, or an empty list.

        Entries that are not objects are dropped rather than raised on: a body of the wrong shape must
        not hide the error it came with.
        """
        fields = self.body.get("invalid_fields") if isinstance(self.body, dict) else None
        if not isinstance(fields, list):
            return []
        return [f for f in fields if isinstance(f, dict)]


class RateLimitError(APIError):
    """429: too many requests. ``retry_after`` is the wait the API asked for, in seconds, if it said.

    The client waits these out and asks again (a 429 proves nothing was processed) for as long as
    the call is allowed to run; you see one only from a client made with ``max_retries=0``.
    """


class ServerError(APIError):
    """5xx: the API failed. GETs and cancels are retried; creates are not (they may have run).

    A create's ServerError has ``maybe_created`` set: look the prediction up before sending again.
    """


class UnexpectedResponseError(APIError):
    """A response the API does not document: not JSON, JSON of the wrong shape, or too large.

    Raised instead of a raw ``KeyError`` or decode error; ``body`` holds what arrived (when it parsed).
    """


class APIConnectionError(ReplicateError):
    """No HTTP answer: the connection could not be made, or broke before the response was read.

    ``sent`` tells whether the request may have reached the API. When it is true and the request was
    a create, ``maybe_created`` is set too: the prediction may exist, so look it up
    (``predictions.find``) rather than creating it again.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        """``sent``: whether the request may have reached the API (False only when connecting failed)."""
        super().__init__(message)
        self.sent = sent

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with ``sent`` and :func:`state_of`, as :meth:`APIError.__reduce__` does."""
        return (_rebuild_connection_error, (type(self), self.args[0], self.sent), state_of(self))


def _rebuild_connection_error(
    cls: type[APIConnectionError], message: str, sent: bool
) -> APIConnectionError:
    """Unpickle an APIConnectionError subclass through its real constructor."""
    return cls(message, sent=sent)


class APITimeoutError(APIConnectionError):
    """The API did not answer in time (connect or read timeout, see ``Client(request_timeout=…)``).

    Not the deadline of a ``run`` or ``wait``: running out of that raises WaitTimeoutError.
    """


class InputValidationError(ReplicateError, ValueError):
    """The input breaks the model's input schema; nothing was sent. ``problems`` lists every problem.

    Also a ValueError, so code catching bad arguments catches it too.
    """

    def __init__(self, ref: str, problems: Sequence[str]) -> None:
        """``ref`` is the model checked against; every problem is listed in the message, one a line."""
        self.ref = ref
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"input for {ref} is not valid ({len(self.problems)} problem(s)):\n{lines}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by ``ref`` and ``problems`` (and :func:`state_of`), not by the built message."""
        return (type(self), (self.ref, self.problems), state_of(self))


class InvalidReferenceError(ReplicateError, ValueError):
    """A model reference that is not ``owner/name``, ``owner/name:<version>`` or a 64-hex version id.

    Raised before any request is sent; also a ValueError.
    """


class WebhookVerificationError(ReplicateError):
    """A webhook delivery failed verification: missing header, bad signature, stale timestamp …

    Answer such a request with 400 and do not act on its body.
    """
