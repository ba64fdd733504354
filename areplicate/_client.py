"""Client: Config → Session → services."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from areplicate._config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POLL,
    DEFAULT_RATE_LIMITS,
    DEFAULT_REQUEST_TIMEOUT,
    Config,
    RateLimits,
)
from areplicate._core.retry import PollSchedule
from areplicate._inputs import prepare_input
from areplicate._options import Lifetime
from areplicate._session import Session
from areplicate._version import package_version

if TYPE_CHECKING:
    # Loaded at first use (`client.files`, `Client(webhooks=...)`): `import areplicate` stays cheap.
    from areplicate._redis_relay import Relay
    from areplicate._services.files import Files
    from areplicate._services.predictions import Predictions
    from areplicate._stats import Stats
    from areplicate._webhooks import Receiver

__all__ = ["Client"]


class Client:
    """An asyncio client for the Replicate API. Use it as ``async with Client() as client:``.

    The token comes from ``api_token`` or the ``REPLICATE_API_TOKEN`` environment variable; the base
    URL from ``base_url``, ``REPLICATE_BASE_URL`` or ``https://api.replicate.com/v1`` (``/v1`` is
    added when missing, so a proxy such as ``https://api.cometapi.com/replicate`` works).

    One Client holds one connection pool and one request budget: share it across your app (for
    example, create it in a FastAPI lifespan) rather than making one per request. A closed Client
    cannot be reopened. ``rate_limits=None`` turns pacing off (for a local fake server).
    ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` (and ``~/.netrc``) are honoured unless
    ``trust_env=False``.

    ``request_timeout`` is the deadline of each HTTP request (seconds for its whole response;
    ``connect_timeout`` for opening a connection). It is not how long a prediction may take: that
    is the ``timeout=`` of ``run``, ``predictions.wait`` or ``create_and_wait``, a deadline for the
    whole call that cancels the prediction when it runs out.
    """

    def __init__(
        self,
        api_token: str | None = None,
        *,
        base_url: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        poll: PollSchedule = DEFAULT_POLL,
        rate_limits: RateLimits | None = DEFAULT_RATE_LIMITS,
        environ: Mapping[str, str] | None = None,
        file_encoding: Literal["auto", "upload", "data-uri"] = "auto",
        trust_env: bool = True,
        webhooks: Receiver | None = None,
        timeout: float | None = None,
    ) -> None:
        """Resolve and check the configuration; nothing connects until the first request.

        A missing token, a bad timeout or a bad ``file_encoding`` raises ValueError here, at
        construction, not on the first call. Services are made on first attribute access.
        ``timeout=`` is the contract's short spelling of ``request_timeout=`` (each HTTP request's
        deadline; a call's own ``timeout=`` on ``run``/``wait`` is the whole call's): give one.
        """
        request_timeout = _request_timeout(request_timeout, timeout, DEFAULT_REQUEST_TIMEOUT)
        self._config = Config.resolve(
            os.environ if environ is None else environ,
            api_token=api_token,
            base_url=base_url,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            max_connections=max_connections,
            poll=poll,
            rate_limits=rate_limits,
            user_agent=f"areplicate/{package_version()}",
            trust_env=trust_env,
        )
        self._session = Session(self._config)
        if file_encoding not in ("auto", "upload", "data-uri"):
            raise ValueError(
                f"file_encoding must be 'auto', 'upload' or 'data-uri', got {file_encoding!r}"
            )
        #: How file inputs are sent: uploaded, inlined as data URIs, or by size ("auto").
        self._file_encoding = file_encoding
        self._receiver = webhooks
        self._relay: Relay | None = None
        self._listening = False
        # The client a view (``with_options``) was made from; None for a client of its own.
        self._parent: Client | None = None
        if webhooks is not None:
            from areplicate._webhooks import Receiver

            if not isinstance(webhooks, Receiver):
                raise TypeError(
                    "webhooks= takes an areplicate.webhooks.Receiver, "
                    f"not {type(webhooks).__name__}"
                )
            webhooks.bind(lambda: self.webhooks.default_secret())  # noqa: PLW0108 - `self.webhooks` is read at call time
            limits = self._config.rate_limits
            if limits is not None and limits.shared is not None:
                from areplicate._redis_relay import Relay

                self._relay = Relay(limits.shared, self._config.api_token)
                webhooks.relay(self._relay.publish)

    def __repr__(self) -> str:
        """The base URL and whether the client is closed; never the token."""
        state = "closed" if self._session.closed else "open"
        return f"<areplicate.Client {self._config.base_url} {state}>"

    @property
    def base_url(self) -> str:
        """The API base URL every request (and follow-up link) is built on.

        Pagination ``next`` links are re-based onto it, so a proxy or the fake in front of the API
        keeps receiving every request, whatever host the links name.
        """
        return self._config.base_url

    @property
    def config(self) -> Config:
        """The resolved configuration (its repr never shows the token).

        ``config.api_token`` itself does hold it, for code that must pass it on: do not log it.
        """
        return self._config

    def with_options(
        self,
        *,
        request_timeout: float | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> Client:
        """This client with other per-request settings, for one call or a part of your app:
        ``await client.with_options(request_timeout=120).models.get(...)``.

        The view shares this client's connection pool, request budget and background clean-up: it
        costs nothing to make, and you need not (and cannot) close it; closing it leaves this
        client open. Once this client is closed the view raises the same closed-client error.
        Arguments left out (None) keep this client's values; ``timeout=`` is the short spelling of
        ``request_timeout=``.
        """
        if timeout is not None:
            request_timeout = _request_timeout(request_timeout, timeout, None)
        config = attrs.evolve(  # checked like the Client's own
            self._config,
            request_timeout=(
                self._config.request_timeout if request_timeout is None else request_timeout
            ),
            max_retries=self._config.max_retries if max_retries is None else max_retries,
        )
        view = object.__new__(Client)
        view._config = config
        view._session = self._session.view(config)
        view._file_encoding = self._file_encoding
        view._receiver = self._receiver  # its creates carry the same webhook and end its waits
        view._relay = self._relay
        view._listening = False
        view._parent = self._parent or self
        return view

    @property
    def stats(self) -> Stats:
        """A frozen snapshot of requests sent, 429s, retries and the request budget's pace.

        It does not update itself: read ``client.stats`` again for fresh numbers.
        """
        from areplicate._stats import Stats

        return Stats.of(self._session.counters, self._session.budget)

    async def __aenter__(self) -> Client:
        """Open the connection pool on the running loop (binding the client to that loop)."""
        self._session._client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client, whatever the body raised; the exception is not swallowed."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Further requests raise RuntimeError.

        On a view (``with_options``) this does nothing: the pool belongs to the client it came from.
        """
        if self._parent is not None:
            return
        await self._session.close()
        if self._relay is not None:
            await self._relay.aclose()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        """Warn (ResourceWarning) about a client garbage-collected with its pool still open.

        It only warns: closing needs the loop, which may be gone by then. ``_warn`` is bound at
        definition so the warning still works during interpreter shutdown.
        """
        session = getattr(self, "_session", None)
        if session is not None and session.opened:
            _warn(
                f"{self!r} was never closed; use `async with Client()` or `await client.aclose()`",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    @cached_property
    def predictions(self) -> Predictions:
        """Create, get, list, cancel, wait for and stream predictions."""
        from areplicate._services.predictions import Predictions

        return Predictions(
            self._session,
            input_hook=self._prepare_input,
            validator=self._validate_input,
            receiver=self._receiver,
            listen=self._listen if self._relay is not None else None,
        )

    def _listen(self) -> None:
        """Start taking the other workers' relayed deliveries (once; stopped by close()).

        A view forwards to its parent, so one client listens once however many views wait.
        """
        if self._parent is not None:
            self._parent._listen()
            return
        relay, receiver = self._relay, self._receiver
        if relay is None or receiver is None or self._listening:
            return
        self._listening = True
        self._session.spawn(relay.listen(receiver.deliver_relayed), work=True)

    async def _validate_input(self, ref: str, input: Mapping[str, Any]) -> None:
        """The predictions service's validator: ``models.validate_input`` of this client."""
        await self.models.validate_input(ref, input)

    async def _prepare_input(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """The input hook of predictions and trainings: file values uploaded or inlined as configured."""
        return await prepare_input(
            input, encoding=self._file_encoding, upload=self.files._upload_url
        )

    # The services: one cached property each, imported lazily.

    if TYPE_CHECKING:
        from areplicate._services.deployments import Deployments
        from areplicate._services.misc import Accounts, Collections, HardwareSKUs
        from areplicate._services.models import Models
        from areplicate._services.trainings import Trainings

    @cached_property
    def models(self) -> Models:
        """Models and their versions: get, list, search; input schemas and ``validate_input``."""
        from areplicate._services.models import Models

        return Models(self._session)

    @cached_property
    def deployments(self) -> Deployments:
        """Deployments: get, list, create, update, delete, and ``predictions.create``."""
        from areplicate._services.deployments import Deployments

        return Deployments(self._session, self.models, lambda: self.predictions)

    @cached_property
    def trainings(self) -> Trainings:
        """Trainings: create, get, list, cancel, wait."""
        from areplicate._services.trainings import Trainings

        return Trainings(self._session, input_hook=self._prepare_input)

    @cached_property
    def collections(self) -> Collections:
        """Curated collections of models: list, get."""
        from areplicate._services.misc import Collections

        return Collections(self._session)

    @cached_property
    def hardware(self) -> HardwareSKUs:
        """The hardware SKUs models and deployments run on: ``async for hw in client.hardware.list()``."""
        from areplicate._services.misc import HardwareSKUs

        return HardwareSKUs(self._session)

    @cached_property
    def account(self) -> Accounts:
        """The account the token belongs to: ``await client.account.get()``."""
        from areplicate._services.misc import Accounts

        return Accounts(self._session)

    if TYPE_CHECKING:
        from areplicate._services.webhooks import Webhooks

    @cached_property
    def files(self) -> Files:
        """Upload, get, list and delete files; ``outputs(p)`` wraps a prediction's file outputs."""
        from areplicate._services.files import Files

        return Files(self._session)

    @cached_property
    def webhooks(self) -> Webhooks:
        """The webhook signing secret: ``await client.webhooks.default_secret()``."""
        from areplicate._services.webhooks import Webhooks

        return Webhooks(self._session)

    async def run(
        self,
        ref: str,
        input: Mapping[str, Any],
        *,
        hold: bool | int = True,
        timeout: float | None = None,
        lifetime: Lifetime | None = None,
        validate: bool = False,
    ) -> Any:
        """Create a prediction, wait for it, and return its ``output`` (``predictions.run``).

        Raises PredictionFailedError (the model's error and the prediction id in the message) when
        it fails, PredictionCanceledError when it is canceled or aborted. Cancelling the awaiting
        task, or ``timeout`` (seconds for the whole call) running out, cancels the remote
        prediction too. ``hold`` is the create's ``Prefer: wait`` window (True: up to 60 s).
        """
        return await self.predictions.run(
            ref, input, hold=hold, timeout=timeout, lifetime=lifetime, validate=validate
        )


def _request_timeout(
    request_timeout: float | None, timeout: float | None, default: float | None
) -> Any:
    """The per-request deadline from ``request_timeout=`` or its short spelling ``timeout=``."""
    if timeout is None:
        return request_timeout
    if request_timeout is not None and request_timeout != default:
        raise TypeError("give request_timeout= or its short spelling timeout=, not both")
    return timeout
