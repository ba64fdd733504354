"""The session layer: the only module that talks HTTP.

One ``aiohttp.ClientSession`` per Client. Every request goes through :meth:`Session.request`: it waits
for the client-wide request budget, sends, maps any error response through the pure
``_core.problems.error_for``, and retries (via stamina) only what ``_core.retry.retry_decision`` allows:
a create is retried only when it provably was not processed. The token is attached only to URLs on
the configured API origin and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import functools
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

import aiohttp
import anyio
import attrs
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from multidict import CIMultiDict, CIMultiDictProxy

from areplicate import _budget, _logs, _otel
from areplicate._config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, Config
from areplicate._core.json_body import encode_json
from areplicate._core.problems import decode_json, error_for
from areplicate._core.retry import MAX_RETRY_AFTER, maybe_processed, retry_decision
from areplicate._core.times import date_offset
from areplicate._core.urls import same_origin
from areplicate._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    ReplicateError,
    UnexpectedResponseError,
)
from areplicate._ledger import ledger_for
from areplicate._proxy import DIRECT, Proxies, Route
from areplicate._stats import Counters, Stats

__all__ = [
    "MAX_BODY",
    "MAX_ERROR_BODY",
    "Response",
    "Session",
    "connection_errors",
    "download_unbound",
]

logger = logging.getLogger("areplicate")

# stamina's backoff for retries without a Retry-After: 0.5 s doubling to 8 s, plus up to 0.5 s jitter.
_WAIT_INITIAL = 0.5
_WAIT_MAX = 8.0
_WAIT_JITTER = 0.5
# When a 429 names no wait, everyone pauses this long (doubling, up to _WAIT_MAX, while they last).
_DEFAULT_429_PAUSE = 1.0
# The shortest pause after the n-th 429 in a row, whatever Retry-After says (0 included), doubling
# from _MIN_429_PAUSE up to 1 s: a server answering "429, retry now" forever must not spin the loop.
_MIN_429_PAUSE = 0.01
_MAX_429_FLOOR = 1.0

#: The largest API response body read into memory (bytes). The API's bodies are a few KB; a larger
#: 2xx is refused with UnexpectedResponseError instead of exhausting memory.
MAX_BODY = 64 * 1024 * 1024
#: How much of an error response's body is read: enough for any problem+json; an error page beyond
#: it is cut (the status alone decides what the error is).
MAX_ERROR_BODY = 1024 * 1024
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# How long close() lets background cleanup (remote cancels) finish.
_CLOSE_GRACE = 15.0


_T = TypeVar("_T")
_UNPARSED: Any = object()

_CLOSING = "this areplicate Client is closing; create a new Client (or use `async with Client()`)"
_OTHER_LOOP = (
    "this areplicate Client was opened on another event loop (each asyncio.run() makes a new "
    "one), and its connections belong to that loop: make one Client per event loop, inside the "
    "coroutine that asyncio.run() runs (or use areplicate.run(), which keeps one per loop)"
)


@attrs.define  # not frozen: a frozen class's __init__ costs twice as much, and one is made per request
class Response:
    """A whole HTTP response: status, headers, the body bytes and (once decoded) its JSON value.

    The body is always read whole (capped by MAX_BODY / MAX_ERROR_BODY) before the connection goes
    back to the pool, so a Response outlives its request safely. ``url`` is the URL asked for, not
    where a redirect led: API requests never follow redirects.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    data: Any = attrs.field(default=_UNPARSED, repr=False)

    def json(self) -> Any:
        """The body as JSON; UnexpectedResponseError (with this response's status) when it is not.

        The session already decoded it (inside its retry loop) for requests that accept JSON.
        """
        if self.data is not _UNPARSED:
            return self.data
        return decode_body(self.body, self.status)


def decode_body(body: bytes, status: int) -> Any:
    """Decode a 2xx JSON body; UnexpectedResponseError labelled with ``status`` when it cannot be."""
    try:
        return decode_json(body)
    except ValueError as exc:  # a too-deep document included
        detail = str(exc)
    raise UnexpectedResponseError(status, "Unexpected response", detail)


def _scrub(exc: BaseException) -> None:
    """Drop request headers (the token) from an aiohttp error, which keeps the request it failed on."""
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        headers = CIMultiDict(
            (k, v) for k, v in info.headers.items() if k.lower() not in _SECRET_HEADERS
        )
        exc.request_info = aiohttp.RequestInfo(
            info.url, info.method, CIMultiDictProxy(headers), info.real_url
        )
        exc.history = ()


# What aiohttp raises when the transport fails (asyncio's TimeoutError for a read timeout).
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


def connection_error(exc: BaseException, method: str, url: str) -> APIConnectionError:
    """The APIConnectionError / APITimeoutError for one of aiohttp's transport failures.

    ``sent`` on the error says whether the request may have reached the server: only a failure to
    connect proves it did not (which is what makes a create safe to retry). Raise it ``from None``.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return APITimeoutError(f"{method} {url}: timed out connecting ({exc})", sent=False)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return APITimeoutError(
            f"{method} {url}: no response within the read timeout ({type(exc).__name__})",
            sent=True,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return APIConnectionError(
            f"{method} {url}: could not connect ({type(exc).__name__}: {exc.os_error})", sent=False
        )
    # `from None` hides the aiohttp error but it stays reachable as __context__: strip it of the
    # request's headers (the session also detaches it from the errors it raises).
    _scrub(exc)
    return APIConnectionError(
        f"{method} {url}: connection broke ({type(exc).__name__}: {exc})", sent=True
    )


@contextlib.contextmanager
def connection_errors(method: str, url: str) -> Iterator[None]:
    """Turn aiohttp's transport failures inside the block into :func:`connection_error`'s errors."""
    try:
        yield
    except _TRANSPORT_ERRORS as exc:
        raise connection_error(exc, method, url) from None


class _ScopeDeadline:
    """:class:`_Deadline`'s interface on an anyio cancel scope, for Python 3.10.

    Entered without a deadline; :meth:`reschedule` sets one; running out raises TimeoutError
    from the ``with``, as ``asyncio.Timeout`` does from its ``async with``.
    """

    __slots__ = ("scope",)

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()

    def reschedule(self, when: float) -> None:
        """Run out at ``when`` (the event loop's clock, which is also anyio's on asyncio)."""
        self.scope.deadline = when

    def expired(self) -> bool:
        """Whether the deadline cut the block short."""
        return self.scope.cancelled_caught

    def __enter__(self) -> _ScopeDeadline:
        self.scope.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.scope.__exit__(*exc_info) and self.scope.cancelled_caught:  # type: ignore[arg-type]
            raise TimeoutError


class _Deadlines:
    """The whole-response deadlines of one client's requests in flight, served by one timer.

    ``asyncio.timeout`` makes a timer per request (a handle made, pushed on the loop's heap and
    cancelled), a tenth of what the client spends on an instant prediction. Nearly every request
    ends long before its deadline, so a single timer, set for the earliest deadline in flight, does
    the same work: when it fires it cancels the requests that are due and sets itself for the next.
    Python 3.11+ (it needs ``Task.uncancel``).
    """

    __slots__ = ("_at", "_pending", "_timer")

    def __init__(self) -> None:
        self._pending: dict[_Deadline, None] = {}  # insertion order; identity keys
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf  # when the timer fires (inf: no timer)

    def watch(self, deadline: _Deadline) -> None:
        """Start watching ``deadline`` (again, if it moved)."""
        self._pending[deadline] = None
        if deadline.when < self._at:
            if self._timer is not None:
                self._timer.cancel()
            self._at = deadline.when
            self._timer = asyncio.get_running_loop().call_at(deadline.when, self._fire)

    def forget(self, deadline: _Deadline) -> None:
        """Its request ended (whichever way)."""
        self._pending.pop(deadline, None)

    def _fire(self) -> None:
        self._timer, self._at = None, math.inf
        # The loop runs a timer up to its clock's resolution early: count that as due.
        now = asyncio.get_running_loop().time() + _DEADLINE_SLACK
        due = [d for d in self._pending if d.when <= now]
        for deadline in due:
            del self._pending[deadline]
            deadline.expire()
        if self._pending:
            first = min(self._pending, key=_when)
            self.watch(first)


_DEADLINE_SLACK = 0.001


def _when(deadline: _Deadline) -> float:
    return deadline.when


class _Deadline:
    """``asyncio.timeout(None)`` for one request (``with``, ``reschedule``, ``expired``), on
    its client's shared timer (:class:`_Deadlines`)."""

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_task", "when")

    def __init__(self, deadlines: _Deadlines) -> None:
        self._deadlines = deadlines
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._expired = False
        self.when = math.inf

    def __enter__(self) -> _Deadline:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a request is always sent from a task
            raise RuntimeError("a request deadline needs a task")
        self._task, self._cancelling = task, task.cancelling()  # type: ignore[attr-defined]  # 3.11+ only
        return self

    def reschedule(self, when: float) -> None:
        """Run out at ``when`` (the event loop's clock)."""
        self.when = when
        self._deadlines.watch(self)

    def expire(self) -> None:
        """The deadline passed: cancel the request's task (turned into TimeoutError on exit)."""
        if self._task is not None and not self._expired:
            self._expired = True
            self._task.cancel()

    def expired(self) -> bool:
        """Whether the deadline cut the block short."""
        return self._expired

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        self._deadlines.forget(self)
        # As asyncio.timeout does: our cancel becomes TimeoutError unless someone else's is pending.
        if (
            self._expired
            and self._task is not None
            and self._task.uncancel() <= self._cancelling  # type: ignore[attr-defined]
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError


# One shared timer (3.11+); 3.10 has no Task.uncancel, so there it is an anyio cancel scope each.
_NEW_DEADLINE: Callable[[_Deadlines], Any]
if sys.version_info >= (3, 11):
    _NEW_DEADLINE = _Deadline
else:

    def _NEW_DEADLINE(_: _Deadlines) -> Any:  # noqa: N802 - a constant that happens to be a function
        return _ScopeDeadline()


class _Sending:
    """One request on its way: its whole-response deadline, and who wants to know it left.

    aiohttp's own timeouts are per socket read (a server trickling a byte a second never trips
    them) or count the wait for a pooled connection too (which would fail a queued create as if it
    had been sent); so the connector calls :meth:`connected` when it hands the request a
    connection: the response must then arrive whole within ``seconds`` (when ``bounded``), and
    ``sent`` (the caller's list) learns that the API may now act on the request.
    """

    __slots__ = ("bounded", "deadline", "refuse", "seconds", "sent")

    def __init__(
        self,
        seconds: float,
        *,
        bounded: bool,
        sent: list[float] | None,
        deadlines: _Deadlines,
        refuse: Session | None,
    ) -> None:
        self.seconds = seconds
        self.bounded = bounded
        self.sent = sent
        self.deadline = _NEW_DEADLINE(deadlines)  # no deadline until connected
        self.refuse = refuse  # a paced request's root session: none goes out once it is closing

    def connected(self) -> None:
        """Start the whole-response clock and record that the request may have reached the API.

        Called by :class:`_Connector` once a connection is in hand; time spent queued for the pool
        before this point counts against neither the deadline nor ``sent``. A paced request
        whose client began closing while it waited for the connection raises instead: close()
        gave its call up, and what it would make would outlive the pool.
        """
        if self.refuse is not None and self.refuse._closing:
            raise RuntimeError(_CLOSING)
        if self.bounded:
            self.deadline.reschedule(asyncio.get_running_loop().time() + self.seconds)
        if self.sent is not None and not self.sent:
            self.sent.append(time.time())


# The request the current task is sending (a context variable: the connector sees only aiohttp's
# request, and aiohttp's tracing hooks would cost a quarter of a request's time).
_SENDING: contextvars.ContextVar[_Sending | None] = contextvars.ContextVar(
    "areplicate_sending", default=None
)


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector that tells the request being sent when it has its connection.

    It finds that request through the ``_SENDING`` context variable; a request sent outside
    :meth:`Session._send` (none is set) simply goes unannounced.
    """

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        sending = _SENDING.get()
        if sending is not None:
            try:
                sending.connected()
            except BaseException:
                connection.release()  # nothing was written: the connection goes back clean
                raise
        return connection


def _names_accept(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` names an Accept header, in any case (a plain loop: any() over a
    generator made one more object on every request)."""
    for name in headers:  # noqa: SIM110
        if len(name) == 6 and name.lower() == "accept":
            return True
    return False


def _nothing() -> None:
    """The undo of a registration that registered nothing."""


def _detach(error: ReplicateError) -> None:
    """Forget the exceptions ``error`` was raised during (aiohttp's carry the request headers).

    ``raise ... from None`` only hides them from tracebacks; they stay reachable as __context__.
    """
    error.__context__ = None
    error.__cause__ = None


class Session:
    """Owns the aiohttp session, the auth header, timeouts, retries and the request budget.

    The aiohttp session is made lazily on the first request and is bound to the loop it was made
    on: using the same Session from another event loop raises instead of hanging. A Session made by
    :meth:`view` shares everything that costs a socket or a budget with its root.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.budget = _budget.Budget(config.rate_limits, token=config.api_token)
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop self._http belongs to
        self._closed = False
        self._closing = False  # close() began: only clean-up (unpaced) requests go out now
        self._auth = f"Bearer {config.api_token}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.request_timeout
        )
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._base_slash = config.base_url + "/"
        self._work: set[asyncio.Task[Any]] = set()  # fan-out workers: close() cancels them
        self._cleanup: set[asyncio.Task[Any]] = set()  # remote cancels: close() awaits them
        # Their removers, bound once: a bound method made per spawn is one more object per worker.
        self._forget_work = self._work.discard
        self._forget_cleanup = self._cleanup.discard
        # Calls in flight outside fan-out work, with what close() must do for each (cancel its
        # prediction, reap its create): closing the client under them is their caller giving up.
        self._on_close: dict[object, Callable[[], Coroutine[Any, Any, None] | None]] = {}
        # Creates in flight and predictions made, shared with this process's other clients of the
        # same account, so orphan clean-up never takes a sibling's prediction for its own.
        self.ledger = ledger_for(config.api_token)
        self._date: tuple[str | None, float] = (None, 0.0)  # the latest Date header, and when
        self.counters = Counters()  # requests, 429s, retries: read through Client.stats
        self.proxies = Proxies(enabled=config.trust_env)
        # Per-client state the services keep across views (copy.copy shares this dict): the
        # sweeper of running predictions.
        self.shared: dict[str, Any] = {}
        self._api_route: Route | None = None  # proxies.route() of the base URL, once looked up
        self._deadlines = _Deadlines()  # the timer of its requests' deadlines (the root's is used)
        # The session that owns the pool; a view (see ``view``) points at its parent's.
        self._root = self

    def view(self, config: Config) -> Session:
        """This session with other per-request settings (``config``'s timeouts and retries) over
        the same connection pool, request budget, ledger and background tasks.

        The view never opens or closes a pool of its own: it uses its root's (opening it if
        needed), raises the closed-client error once the root is closed, and closing it is a no-op.
        """
        view = copy.copy(self)  # shares budget, ledger, the task sets and the timeout cache
        view.config = config
        view._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.request_timeout
        )
        view._root = self._root
        return view

    def __repr__(self) -> str:
        """The base URL and whether the session is closed; never the token."""
        return f"<Session {self.config.base_url} {'closed' if self._closed else 'open'}>"

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (of the root session, for a view)."""
        return self._root._closed

    @property
    def opened(self) -> bool:
        """True once the aiohttp session exists (and until close); always False for a view, which
        owns nothing to close."""
        return self._root is self and self._http is not None and not self._closed

    def _client(self) -> aiohttp.ClientSession:
        """The root's aiohttp session, made on first use on the running loop.

        Raises RuntimeError for a closed client, or when called from another loop than the one the
        pool was opened on (aiohttp connections cannot move between loops).
        """
        if self._root is not self:
            return self._root._client()
        if self._closed:
            raise RuntimeError(
                "this areplicate Client is closed; create a new Client (or use `async with Client()`)"
            )
        if self._http is not None:
            if asyncio.get_running_loop() is not self._loop:
                raise RuntimeError(_OTHER_LOOP)
        else:
            self._loop = asyncio.get_running_loop()
            connector = _Connector(
                limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": self.config.user_agent},
                raise_for_status=False,
            )
        return self._http

    async def close(self) -> None:
        """Cancel running work, let clean-up (remote cancels) finish, close the pool. Idempotent.

        Calls still in flight in other tasks (a ``run`` being awaited elsewhere) are given up too:
        their predictions are cancelled, and an abandoned create is reaped, before the pool closes.
        A view's close does nothing: the pool and the work belong to its root.
        """
        if self._root is not self:
            return
        self._closing = True
        for task in self._work:
            task.cancel()
        given_up, self._on_close = self._on_close, {}
        for action in given_up.values():
            try:
                cleanup = action()
            except Exception:  # one call's clean-up failing must not leave the pool open
                logger.exception("clean-up of a call given up by close() failed")
                continue
            if cleanup is not None:
                self.spawn(cleanup)
        deadline = time.monotonic() + _CLOSE_GRACE
        # Cancelled work spawns its clean-up as it unwinds, so look again until all is quiet.
        while (pending := self._work | self._cleanup) and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(pending, timeout=left)
        self._closed = True
        if self.counters.requests and logger.isEnabledFor(logging.DEBUG):
            # What the client did, in one line (the CLI's --verbose shows it as a command ends).
            stats = Stats.of(self.counters, self.budget)
            logger.debug("client of %s closed: %s", self.config.base_url, stats.describe())
        await self.budget.aclose()
        if self._http is not None:
            await self._http.close()

    def on_close(
        self, action: Callable[[_T], Coroutine[Any, Any, None] | None], arg: _T
    ) -> Callable[[], None]:
        """Have close() run ``action(arg)`` (and spawn the clean-up coroutine it may return) if
        the client closes while the current call is in flight; returns the undo, for when it ends.

        Fan-out work registers nothing: close() cancels those tasks, and a cancelled call cleans
        up after itself. Everyone else's call would only meet a closed client and give up with its
        prediction still running.
        """
        root = self._root
        task = asyncio.current_task()
        if task is not None and task in root._work:
            return _nothing
        key = object()
        registry = root._on_close
        registry[key] = functools.partial(action, arg)

        def undo() -> None:
            registry.pop(key, None)

        return undo

    def spawn(self, coro: Coroutine[Any, Any, _T], *, work: bool = False) -> asyncio.Task[_T]:
        """Run a task tied to this client. ``work=True``: close() cancels it (a fan-out worker);
        otherwise it is clean-up (a remote cancel) that close() waits for."""
        task = asyncio.get_running_loop().create_task(coro)
        if work:
            self._work.add(task)
            task.add_done_callback(self._forget_work)
        else:
            self._cleanup.add(task)
            task.add_done_callback(self._forget_cleanup)
        return task

    def clock_offset(self) -> tuple[float, float] | None:
        """Bounds on the API's clock minus ours, from the latest ``Date`` header (None: none yet).

        A ``Date`` has one-second resolution, hence bounds rather than a single number; callers use
        them to turn the API's absolute timestamps (``created_at``) into local deadlines.
        """
        return date_offset(*self._root._date)

    def _timeout_for(self, read_timeout: float) -> aiohttp.ClientTimeout:
        """An aiohttp timeout with this per-read limit, cached (one object per distinct value).

        Only the socket read is bound here: the whole-response deadline is the ``_Sending`` scope.
        """
        timeout = self._timeouts.get(read_timeout)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.config.connect_timeout, sock_read=read_timeout
            )
            self._timeouts[read_timeout] = timeout
        return timeout

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (relative to the base URL) or ``path`` itself if absolute.

        An absolute URL is kept as given, even on another host: :meth:`headers_for` then decides
        whether it may carry the token.
        """
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.config.base_url}/{path.lstrip('/')}"

    def headers_for(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Request headers for ``url``: the token only when it is on the API's own origin."""
        headers = dict(extra) if extra else {}
        if url.startswith(self._base_slash) or same_origin(url, self.config.base_url):
            headers["Authorization"] = self._auth
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        create: bool = False,
        read_timeout: float | None = None,
        paced: bool = True,
        sent: list[float] | None = None,
    ) -> Awaitable[Response]:
        """Send one API request with budget, retries and error mapping; return the 2xx response.

        ``create`` marks a request that makes something billable (a prediction): it is paced as a
        create and retried only when it provably was not processed; an error raised after it may
        have been processed has ``maybe_created`` set. A 429 is waited out and asked again for as
        long as the caller lets it run (it never uses up the retries; only ``max_retries=0`` raises
        it). ``data`` may be a callable that returns a fresh body per attempt (a multipart form
        cannot be sent twice). ``paced=False`` skips the request budget (clean-up that must not
        queue behind the work it stops). ``sent`` gets the time (``time.time()``) appended once a request has a
        connection to the API (from then on the API may act on it). ``read_timeout`` (default: the client's ``timeout``)
        bounds the whole response, headers and body, from the moment the request was sent.
        Unless ``headers`` names an ``Accept``, the body is decoded as JSON here (``.json()``), so
        an unreadable 2xx is retried like any other failed read.
        """
        sending = self._request(
            method, path, json_body, data, params, headers, create, read_timeout, paced, sent
        )
        tracer = _otel.recording()  # asked per request: an application may install one later
        if tracer is None:
            return sending
        return _otel.traced_request(tracer, self, method, path, sending)

    async def _request(
        self,
        method: str,
        path: str,
        json_body: Any,
        data: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        create: bool,
        read_timeout: float | None,
        paced: bool,
        sent: list[float] | None,
    ) -> Response:
        """:meth:`request`'s work, its arguments positional (one call per request, no keywords)."""
        self._client()  # a closed client, or one from another event loop, says so before anything
        url = self.url(path)
        idempotent = not create
        try:
            # The first attempt runs bare: almost every request succeeds at once, and building the
            # retry machinery costs more than the rest of the client's per-request work together.
            try:
                return await self._attempt(
                    method,
                    url,
                    json_body=json_body,
                    data=data,
                    params=params,
                    headers=headers,
                    create=create,
                    read_timeout=read_timeout,
                    paced=paced,
                    sent=sent,
                )
            except (APIError, APIConnectionError) as exc:
                if (
                    retry_decision(exc, idempotent=idempotent) is False
                    or not self.config.max_retries
                ):
                    raise
                failed: BaseException | None = exc
            send = functools.partial(
                self._attempt,
                method,
                url,
                json_body=json_body,
                data=data,
                params=params,
                headers=headers,
                create=create,
                read_timeout=read_timeout,
                paced=paced,
                sent=sent,
            )

            # stamina's verdict for a failed attempt: False stops, True retries, a float is a
            # Retry-After. A partial, not a closure: a closure's cell is made on every request.
            on_error = functools.partial(retry_decision, idempotent=idempotent)

            # It failed in a way worth retrying: stamina takes over, its first attempt being the
            # one that just failed (replayed, not re-sent), so backoff, attempt counts and
            # stamina's testing mode all apply as if it had run from the start.
            attempts = self.config.max_retries + 1
            import stamina  # here, at the first retry: `import areplicate` does not pay for it

            with _logs.retrying(method, url, attempts):
                async for attempt in stamina.retry_context(
                    on=on_error,
                    attempts=attempts,
                    timeout=None,
                    wait_initial=_WAIT_INITIAL,
                    wait_max=_WAIT_MAX,
                    wait_jitter=_WAIT_JITTER,
                ):
                    with attempt:
                        if failed is not None:
                            replay, failed = failed, None
                            raise replay
                        self.counters.retries += 1
                        return await send()
            raise AssertionError("unreachable: stamina returns or raises")  # pragma: no cover
        except ReplicateError as exc:
            if create and maybe_processed(exc):
                exc.mark_maybe_created()
            raise

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        json_body: Any,
        data: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        create: bool,
        read_timeout: float | None,
        paced: bool,
        sent: list[float] | None,
    ) -> Response:
        """One try: wait for the budget, send, and raise the mapped error for a non-2xx.

        A 429 is not a failure of the try: it was provably not processed, so it pauses the client
        (honouring Retry-After, capped) and asks again, here, without using up a retry.
        """
        throttled = 0
        while True:
            if paced:
                await self.budget.acquire(create=create)
                if self._root._closing:
                    # A call that waited for the budget while close() gave it up must not send
                    # now: what it made would outlive the pool, with nobody left to cancel it.
                    raise RuntimeError(_CLOSING)
            body = data() if callable(data) else data
            response = await self._send(
                method,
                url,
                json_body=json_body,
                data=body,
                params=params,
                headers=headers,
                read_timeout=read_timeout,
                sent=sent,
                paced=paced,
            )
            budget = self.budget
            if budget.limits is not None and not budget.learned(
                response.status, response.headers, create=create
            ):  # a budget shared in Redis learns there
                await budget.observe(response.status, response.headers, create=create)
            if response.status < 300:
                return response
            error = _error_for(response)
            if isinstance(error, RateLimitError):
                self.counters.throttled += 1
                if sent:
                    # The API refused this attempt unprocessed: until the next one has a
                    # connection, nothing of it is on the wire (a caller giving up meanwhile
                    # leaves no orphan behind, so nobody else's prediction is taken for one).
                    sent.clear()
            if isinstance(error, RateLimitError) and self.config.max_retries:
                throttled += 1
                pause = _429_pause(error.retry_after, throttled)
                _logs.log_throttled(method, url, error, throttled, pause)
                self.budget.pause(pause)
                if not paced:  # clean-up skips the budget, so it waits its own turn
                    await asyncio.sleep(pause)
                continue
            raise error

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any,
        data: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        read_timeout: float | None,
        sent: list[float] | None = None,
        paced: bool = False,
    ) -> Response:
        """One attempt: send one request and read its whole (capped) response.

        No retries here, and an error status is returned, not raised: :meth:`request` decides. The
        deadline covers the response once a connection is in hand, but not an upload's streaming body
        (only its socket reads are bound). Records the ``Date`` header for :meth:`clock_offset`.
        """
        http = self._client()
        request_headers = self.headers_for(url, headers)
        # A caller naming its own Accept (a README as text) gets the bytes; everyone else JSON.
        expect_json = not headers or not _names_accept(headers)
        request_headers.setdefault("Accept", "application/json")
        if json_body is not None:
            data = encode_json(json_body)
            request_headers["Content-Type"] = "application/json"
        if read_timeout is None:
            seconds, timeout = self.config.request_timeout, self._timeout
        else:
            seconds, timeout = read_timeout, self._timeout_for(read_timeout)
        # An upload (a form, a stream) may take longer than any response: only its reads are bound.
        sending = _Sending(
            seconds,
            bounded=data is None or isinstance(data, bytes),
            sent=sent,
            deadlines=self._root._deadlines,
            refuse=self._root if paced else None,
        )
        context = _SENDING.set(sending)
        started = time.perf_counter()
        self.counters.requests += 1
        route = self._api_route
        if route is None or not url.startswith(self._base_slash):
            route = self.proxies.route(url)
            if url.startswith(self._base_slash):
                self._api_route = route  # the proxies are read once per origin anyway
        if route.request_headers:
            request_headers.update(route.request_headers)
        try:
            try:
                with sending.deadline:  # a plain context manager: no coroutine to enter it
                    try:  # connection_errors(), spelt out: no generator on every request
                        async with http.request(
                            method,
                            url,
                            data=data,
                            params=params,
                            headers=request_headers,
                            # aiohttp labels even an empty POST application/octet-stream; a
                            # bodiless request (a cancel) goes out as the API documents it: no
                            # body, no type.
                            skip_auto_headers=("Content-Type",) if data is None else None,
                            timeout=timeout,
                            allow_redirects=False,
                            proxy=route.proxy,
                            proxy_headers=route.connect_headers,
                        ) as resp:
                            status = resp.status
                            resp_headers: CIMultiDictProxy[str] = resp.headers
                            length = resp.content_length
                            if (
                                length is not None
                                and length <= MAX_ERROR_BODY
                                and "Content-Encoding" not in resp_headers
                            ):
                                body = await resp.read()  # what _read_body does for these
                            else:
                                body = await _read_body(resp)
                    except _TRANSPORT_ERRORS as exc:
                        raise connection_error(exc, method, url) from None
            except TimeoutError:
                if not sending.deadline.expired():
                    raise
                raise APITimeoutError(
                    f"{method} {url}: no complete response within {seconds:g} s", sent=True
                ) from None
        except ReplicateError as exc:
            _detach(exc)  # the same error, without aiohttp's (which hold the request's headers)
            raise
        finally:
            _SENDING.reset(context)
        if date := resp_headers.get("Date"):
            # Only a response that says the time moves the clock: one without a Date would make
            # the API's clock unknown, and the reaper's windows two minutes wide.
            self._root._date = (date, time.time())
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (%.1f ms)",
                method,
                _logs.shown_url(url),
                status,
                (time.perf_counter() - started) * 1e3,
            )
        if expect_json and status < 300 and body:
            return Response(status, resp_headers, body, url, decode_body(body, status))
        return Response(status, resp_headers, body, url)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streaming GET (SSE, downloads); error responses raise the mapped APIError.

        The token goes along only when ``url`` is on the API's origin. No retries: the caller knows
        how to resume (SSE ``Last-Event-ID``). ``read_timeout`` (default: the client's ``timeout``)
        bounds each wait for more of the stream, not the whole of it (a stream may run for hours).
        """
        http = self._client()
        if same_origin(url, self.config.base_url):  # other hosts (file CDNs) have their own limits
            await self.budget.acquire(create=False)
        seconds = read_timeout if read_timeout is not None else self.config.request_timeout
        timeout = self._timeout_for(seconds)
        self.counters.requests += 1
        route = self.proxies.route(url)
        request_headers = self.headers_for(url, headers)
        if route.request_headers:
            request_headers.update(route.request_headers)
        # Redirects only off the API's origin: following one could carry the token elsewhere.
        redirects = 0 if same_origin(url, self.config.base_url) else _DOWNLOAD_REDIRECTS
        async with _plain_get(http, url, timeout, route, request_headers, redirects) as resp:
            yield resp

    @contextlib.asynccontextmanager
    async def download(
        self, url: str, *, read_timeout: float | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a GET of a file on another host (``replicate.delivery``), never with the token.

        It shares the client's connection pool but not its request budget (file hosts have their
        own limits) and follows up to 5 redirects, which is safe because nothing secret goes along.
        The gotcha: it sends no token even to the API's own origin; use :meth:`stream` there. An
        error status raises the mapped APIError (NotFoundError for a 404); no retries.
        """
        seconds = read_timeout if read_timeout is not None else self.config.request_timeout
        route = self.proxies.route(url)
        async with _plain_get(self._client(), url, self._timeout_for(seconds), route) as resp:
            yield resp


# Redirects followed by downloads that carry no credentials.
_DOWNLOAD_REDIRECTS = 5


@contextlib.asynccontextmanager
async def _plain_get(
    http: aiohttp.ClientSession,
    url: str,
    timeout: aiohttp.ClientTimeout,
    route: Route = DIRECT,
    headers: Mapping[str, str] | None = None,
    redirects: int = _DOWNLOAD_REDIRECTS,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """A GET that yields a response below 400 (errors raised mapped, without aiohttp's context).

    Downloads (outputs and files, which may live on a CDN) call it with no ``headers``: no
    Authorization is ever added there, and up to ``redirects`` redirects are followed, unlike API
    requests. ``Session.stream`` passes its own headers (the token on the API's origin only) and
    ``redirects=0`` there.
    """
    try:
        with connection_errors("GET", url):
            async with http.get(
                url,
                timeout=timeout,
                allow_redirects=redirects > 0,
                max_redirects=max(redirects, 1),
                headers=route.request_headers if headers is None else headers,
                proxy=route.proxy,
                proxy_headers=route.connect_headers,
            ) as resp:
                if resp.status >= 400:
                    body = await _read_body(resp)
                    error = error_for(resp.status, resp.headers, body, now=time.time())
                    if error is not None:
                        raise error
                yield resp
    except (APIError, APIConnectionError) as exc:
        _detach(exc)  # the same error, without aiohttp's (which hold the request's headers)
        raise


@contextlib.asynccontextmanager
async def download_unbound(url: str) -> AsyncIterator[aiohttp.ClientResponse]:
    """:meth:`Session.download` for code that has no Client: on a short-lived pool of its own.

    The default timeouts apply (connect and per-read, none on the whole download). Each call opens
    and closes its own connections, so prefer a Client's session for many files.
    """
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=DEFAULT_CONNECT_TIMEOUT, sock_read=DEFAULT_REQUEST_TIMEOUT
    )
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        _plain_get(http, url, timeout, Proxies(enabled=True).route(url)) as resp,
    ):
        yield resp


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The body, read incrementally and capped: MAX_BODY for a 2xx (more is an error),
    MAX_ERROR_BODY for an error answer (more is cut off; the status says what went wrong)."""
    status = resp.status
    limit = MAX_BODY if status < 300 else MAX_ERROR_BODY
    length = resp.content_length
    if length is not None and length <= limit and "Content-Encoding" not in resp.headers:
        return await resp.read()  # the common case: aiohttp reads exactly the announced length
    if status < 300 and length is not None and length > limit:
        raise _too_large(status, length)
    buffer = bytearray()
    async for chunk in resp.content.iter_any():
        buffer += chunk
        if len(buffer) > limit:
            if status < 300:
                raise _too_large(status, None)
            del buffer[limit:]
            break
    return bytes(buffer)


def _too_large(status: int, length: int | None) -> UnexpectedResponseError:
    """The error for a 2xx body over MAX_BODY (``length`` None: found while reading, not announced)."""
    size = f"{length} bytes" if length is not None else f"over {MAX_BODY} bytes"
    return UnexpectedResponseError(
        status,
        "Response too large",
        f"the API answered with {size}, more than the {MAX_BODY // (1024 * 1024)} MiB the client "
        "reads; no API response is that large (check the base_url, or a proxy in between)",
    )


def _error_for(response: Response) -> APIError:
    """The error for a response of status 300 or more.

    ``error_for`` maps only a 2xx to None, so a None here is a bug in the caller, not a response.
    """
    error = error_for(response.status, response.headers, response.body, now=time.time())
    if error is None:  # pragma: no cover - only a 2xx maps to no error
        raise AssertionError(f"no error for HTTP {response.status}")
    return error


def _429_pause(retry_after: float | None, throttled: int) -> float:
    """How long the client pauses after the ``throttled``-th 429 in a row.

    With no Retry-After, 1 s doubling up to 8 s. With one, its value (capped at MAX_RETRY_AFTER)
    but never below a floor that doubles from 10 ms to 1 s, so a server answering "retry now"
    forever cannot make the client spin.
    """
    doubling = 2.0 ** min(throttled - 1, 20)
    if retry_after is None:
        return min(_WAIT_MAX, _DEFAULT_429_PAUSE * doubling)
    return max(min(_MAX_429_FLOOR, _MIN_429_PAUSE * doubling), min(retry_after, MAX_RETRY_AFTER))
