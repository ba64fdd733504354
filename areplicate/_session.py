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
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from typing import Any

import aiohttp
import attrs
import stamina
from aiolimiter import AsyncLimiter
from multidict import CIMultiDictProxy

from areplicate import _budget
from areplicate._config import Config, RateLimits
from areplicate._core.problems import decode_json, error_for
from areplicate._core.retry import MAX_RETRY_AFTER, retry_decision
from areplicate._core.times import date_offset
from areplicate._core.urls import same_origin
from areplicate._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    UnexpectedResponseError,
)
from areplicate._ledger import ledger_for

__all__ = ["Response", "Session", "connection_errors"]

logger = logging.getLogger("areplicate")

# stamina's backoff for retries without a Retry-After: 0.5 s doubling to 8 s, plus up to 0.5 s jitter.
_WAIT_INITIAL = 0.5
_WAIT_MAX = 8.0
_WAIT_JITTER = 0.5
# When a 429 names no wait, everyone pauses this long.
_DEFAULT_429_PAUSE = 1.0
# How long close() lets background cleanup (remote cancels) finish.
_CLOSE_GRACE = 15.0


@attrs.frozen
class Response:
    """A whole HTTP response: status, headers and the body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON; UnexpectedResponseError when it is not JSON."""
        try:
            return decode_json(self.body)
        except ValueError as exc:
            raise UnexpectedResponseError(self.status, "Unexpected response", str(exc)) from None


@contextlib.contextmanager
def connection_errors(method: str, url: str) -> Iterator[None]:
    """Turn aiohttp's transport failures into APIConnectionError / APITimeoutError.

    ``sent`` on the error says whether the request may have reached the server: only a failure to
    connect proves it did not (which is what makes a create safe to retry).
    """
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise APITimeoutError(f"{method} {url}: timed out connecting ({exc})", sent=False) from None
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
        raise APITimeoutError(
            f"{method} {url}: no response within the read timeout ({type(exc).__name__})",
            sent=True,
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise APIConnectionError(
            f"{method} {url}: could not connect ({type(exc).__name__}: {exc.os_error})", sent=False
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise APIConnectionError(
            f"{method} {url}: connection broke ({type(exc).__name__}: {exc})", sent=True
        ) from None


async def _headers_sent(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    # A request given a ``sent`` list learns here that it reached a connection: from now on the
    # API may act on it, so a caller giving up leaves an orphan to clean up.
    sent = context.trace_request_ctx
    if sent is not None and not sent:
        sent.append(True)


_SENT_TRACE = aiohttp.TraceConfig()
_SENT_TRACE.on_request_headers_sent.append(_headers_sent)
_SENT_TRACE.freeze()


class Budget:
    """The client-wide request budget: paces creates and other requests, and pauses all on a 429."""

    def __init__(self, limits: RateLimits | None) -> None:
        self._creates: AsyncLimiter | None = None
        self._others: AsyncLimiter | None = None
        if limits is not None:
            self._creates = AsyncLimiter(
                max(1.0, limits.creates_per_minute / 60.0 * limits.burst), limits.burst
            )
            self._others = AsyncLimiter(
                max(1.0, limits.requests_per_minute / 60.0 * limits.burst), limits.burst
            )
        self._resume_at = 0.0

    async def acquire(self, *, create: bool) -> None:
        """Wait until one more request may go."""
        loop = asyncio.get_running_loop()
        # A 429 elsewhere may push the resume time later while we sleep: look again on waking.
        while (delay := self._resume_at - loop.time()) > 0:  # noqa: ASYNC110 - a deadline, not a flag
            await asyncio.sleep(delay)
        limiter = self._creates if create else self._others
        if limiter is not None:
            await limiter.acquire()

    def pause(self, seconds: float) -> None:
        """Hold every request of this client for ``seconds`` (a 429 said so)."""
        resume = asyncio.get_running_loop().time() + seconds
        self._resume_at = max(self._resume_at, resume)


class Session:
    """Owns the aiohttp session, the auth header, timeouts, retries and the request budget."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.budget = _budget.Budget(config.rate_limits, token=config.api_token)
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self._auth = f"Bearer {config.api_token}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.timeout
        )
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._base_slash = config.base_url + "/"
        self._work: set[asyncio.Task[None]] = set()  # fan-out workers: close() cancels them
        self._cleanup: set[asyncio.Task[None]] = set()  # remote cancels: close() awaits them
        # Creates in flight and predictions made, shared with this process's other clients of the
        # same account, so orphan clean-up never takes a sibling's prediction for its own.
        self.ledger = ledger_for(config.api_token)
        self._date: tuple[str | None, float] = (None, 0.0)  # the latest Date header, and when

    def __repr__(self) -> str:
        return f"<Session {self.config.base_url} {'closed' if self._closed else 'open'}>"

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def opened(self) -> bool:
        """True once the aiohttp session exists (and until close)."""
        return self._http is not None and not self._closed

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(
                "this areplicate Client is closed; create a new Client (or use `async with Client()`)"
            )
        if self._http is None:
            connector = aiohttp.TCPConnector(
                limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": self.config.user_agent},
                raise_for_status=False,
                trace_configs=[_SENT_TRACE],
            )
        return self._http

    async def close(self) -> None:
        """Cancel running work, let clean-up (remote cancels) finish, close the pool. Idempotent."""
        for task in self._work:
            task.cancel()
        deadline = time.monotonic() + _CLOSE_GRACE
        # Cancelled work spawns its clean-up as it unwinds, so look again until all is quiet.
        while (pending := self._work | self._cleanup) and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(pending, timeout=left)
        self._closed = True
        await self.budget.aclose()
        if self._http is not None:
            await self._http.close()

    def spawn(self, coro: Coroutine[Any, Any, None], *, work: bool = False) -> asyncio.Task[None]:
        """Run a task tied to this client. ``work=True``: close() cancels it (a fan-out worker);
        otherwise it is clean-up (a remote cancel) that close() waits for."""
        task = asyncio.get_running_loop().create_task(coro)
        tasks = self._work if work else self._cleanup
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    def clock_offset(self) -> tuple[float, float] | None:
        """Bounds on the API's clock minus ours, from the latest ``Date`` header (None: none yet)."""
        return date_offset(*self._date)

    def _timeout_for(self, read_timeout: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(read_timeout)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.config.connect_timeout, sock_read=read_timeout
            )
            self._timeouts[read_timeout] = timeout
        return timeout

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (relative to the base URL) or ``path`` itself if absolute."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.config.base_url}/{path.lstrip('/')}"

    def headers_for(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Request headers for ``url``: the token only when it is on the API's own origin."""
        headers = dict(extra) if extra else {}
        if url.startswith(self._base_slash) or same_origin(url, self.config.base_url):
            headers["Authorization"] = self._auth
        return headers

    async def request(
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
        sent: list[bool] | None = None,
    ) -> Response:
        """Send one API request with budget, retries and error mapping; return the 2xx response.

        ``create`` marks a request that makes something billable (a prediction): it is paced as a
        create and retried only when it provably was not processed. ``data`` may be a callable that
        returns a fresh body per attempt (a multipart form cannot be sent twice). ``paced=False``
        skips the request budget (clean-up that must not queue behind the work it stops). ``sent``
        gets ``True`` appended once a request's headers were written to a connection.
        """
        url = self.url(path)
        idempotent = not create
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
        # The first attempt runs bare: almost every request succeeds at once, and building the
        # retry machinery costs more than the rest of the client's per-request work together.
        try:
            return await send()
        except (APIError, APIConnectionError) as exc:
            if retry_decision(exc, idempotent=idempotent) is False or self.config.max_retries == 0:
                raise
            failed: BaseException | None = exc

        def on_error(exc: Exception) -> bool | float:
            return retry_decision(exc, idempotent=idempotent)

        # It failed in a way worth retrying: stamina takes over, its first attempt being the one
        # that just failed (replayed, not re-sent), so backoff, Retry-After (via the hook),
        # attempt counts and stamina's testing mode all apply as if it had run from the start.
        async for attempt in stamina.retry_context(
            on=on_error,
            attempts=self.config.max_retries + 1,
            timeout=None,
            wait_initial=_WAIT_INITIAL,
            wait_max=_WAIT_MAX,
            wait_jitter=_WAIT_JITTER,
        ):
            with attempt:
                if failed is not None:
                    replay, failed = failed, None
                    raise replay
                return await send()
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

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
        sent: list[bool] | None,
    ) -> Response:
        """One try: wait for the budget, send, and raise the mapped error for a non-2xx."""
        if paced:
            await self.budget.acquire(create=create)
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
        )
        error = error_for(response.status, response.headers, response.body, now=time.time())
        await self.budget.observe(response.status, response.headers, create=create)
        if error is not None:
            if isinstance(error, RateLimitError):
                wait = error.retry_after
                # A wait beyond MAX_RETRY_AFTER is raised, not waited out: pausing every
                # other request of this client for it would only hang them.
                if wait is None or wait <= MAX_RETRY_AFTER:
                    self.budget.pause(_DEFAULT_429_PAUSE if wait is None else wait)
            raise error
        return response

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
        sent: list[bool] | None = None,
    ) -> Response:
        http = self._client()
        request_headers = self.headers_for(url, headers)
        request_headers.setdefault("Accept", "application/json")
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            request_headers["Content-Type"] = "application/json"
        timeout = self._timeout if read_timeout is None else self._timeout_for(read_timeout)
        started = time.perf_counter()
        with connection_errors(method, url):
            async with http.request(
                method,
                url,
                data=data,
                params=params,
                headers=request_headers,
                timeout=timeout,
                allow_redirects=False,
                trace_request_ctx=sent,
            ) as resp:
                body = await resp.read()
                status = resp.status
                resp_headers: CIMultiDictProxy[str] = resp.headers
        self._date = (resp_headers.get("Date"), time.time())
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (%.1f ms)", method, url, status, (time.perf_counter() - started) * 1e3
            )
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
        how to resume (SSE ``Last-Event-ID``).
        """
        http = self._client()
        if same_origin(url, self.config.base_url):  # other hosts (file CDNs) have their own limits
            await self.budget.acquire(create=False)
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.config.connect_timeout,
            sock_read=read_timeout if read_timeout is not None else self.config.timeout,
        )
        with connection_errors("GET", url):
            async with http.get(
                url,
                headers=self.headers_for(url, headers),
                timeout=timeout,
                allow_redirects=not same_origin(url, self.config.base_url),
            ) as resp:
                if resp.status >= 400:
                    body = await resp.read()
                    error = error_for(resp.status, resp.headers, body, now=time.time())
                    if error is not None:
                        raise error
                yield resp
