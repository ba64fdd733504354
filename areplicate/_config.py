"""Client configuration: argument > environment > default, resolved once into a frozen Config."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

from areplicate._core.retry import PollSchedule
from areplicate._core.urls import DEFAULT_BASE_URL, normalize_base_url

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_POLL",
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_REQUEST_TIMEOUT",
    "Config",
    "REDIS_URL_ENV",
    "RateLimits",
    "TOKEN_ENV",
]

TOKEN_ENV = "REPLICATE_API_TOKEN"  # noqa: S105 - the variable's name, not a token
BASE_URL_ENV = "REPLICATE_BASE_URL"
#: A Redis URL: every client on this token shares one request budget there (``RateLimits.shared``).
REDIS_URL_ENV = "AREPLICATE_REDIS_URL"

#: Seconds one HTTP request may take to answer (a ``Prefer: wait`` create gets its hold on top).
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Seconds to wait for a TCP/TLS connection.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Retries after the first attempt, for requests that may be retried at all.
DEFAULT_MAX_RETRIES = 5
#: Open connections to the API at once (the fan-out's concurrency is also capped by this).
DEFAULT_MAX_CONNECTIONS = 100


@attrs.frozen
class RateLimits:
    """The client-wide request budget: the pace all requests of one Client share.

    Replicate allows 600 prediction creates and 3000 other requests a minute, with short bursts.
    ``burst`` is how many seconds' worth of requests may go at once after a quiet spell. Pass
    ``rate_limits=None`` to ``Client`` to switch pacing off (a 429 still slows everyone down).

    These are ceilings: the pace starts lower and learns the account's real limit from 429s and
    ``ratelimit-*`` headers. ``shared="redis://host:6379/0"`` (or the ``AREPLICATE_REDIS_URL``
    environment variable) makes every client on every process that uses the same token draw from
    one budget in Redis (``pip install 'areplicate[redis]'``). Gotcha: the limits belong to the
    account, so give every process the same ``RateLimits``, not a per-process share; when Redis is
    unreachable a client paces itself at ``fallback_share`` of them until it answers again.
    """

    creates_per_minute: float = 600.0
    requests_per_minute: float = 3000.0
    burst: float = 5.0
    shared: str | None = attrs.field(default=None, repr=lambda url: _redacted(url))  # noqa: PLW0108 - defined below
    fallback_share: float = 0.25

    def __attrs_post_init__(self) -> None:
        """Refuse non-positive limits and a fallback share outside (0, 1], and a non-Redis ``shared``.

        The error message never echoes a Redis password: the URL is shown through :func:`_redacted`.
        """
        if self.creates_per_minute <= 0 or self.requests_per_minute <= 0 or self.burst <= 0:
            raise ValueError(
                "RateLimits values must be positive; pass rate_limits=None to turn pacing off"
            )
        if not 0 < self.fallback_share <= 1:
            raise ValueError(
                f"RateLimits.fallback_share must be above 0 and at most 1, got {self.fallback_share!r}"
            )
        if self.shared is not None and (
            not isinstance(self.shared, str)
            or urlsplit(self.shared).scheme not in ("redis", "rediss", "unix")
        ):
            raise ValueError(
                f"RateLimits.shared must be a Redis URL such as redis://localhost:6379/0, "
                f"got {_redacted(self.shared)}"
            )


def _redacted(url: object) -> str:
    """A Redis URL for reprs and messages, its password (if any) replaced by ``***``.

    The result is already ``repr``-quoted, so it drops straight into a message or an attrs repr.
    """
    if not isinstance(url, str):
        return repr(url)
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return repr(parts._replace(netloc=f"{user}***@{netloc}").geturl())


DEFAULT_RATE_LIMITS = RateLimits()
DEFAULT_POLL = PollSchedule()


@attrs.frozen
class Config:
    """Everything a Client needs, resolved (what ``client.config`` returns). The token is never
    part of the repr.

    ``request_timeout`` bounds each HTTP request (seconds for its whole response); it is not the
    deadline of a ``run`` or ``wait``, which is their own ``timeout=``.
    """

    api_token: str = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    poll: PollSchedule = DEFAULT_POLL
    rate_limits: RateLimits | None = DEFAULT_RATE_LIMITS
    user_agent: str = "areplicate"
    #: Honour HTTP(S)_PROXY / NO_PROXY from the environment (aiohttp's ``trust_env``).
    trust_env: bool = True

    def __attrs_post_init__(self) -> None:
        """Check the numbers (also on ``attrs.evolve``, which is how ``with_options`` builds a view).

        Booleans are refused where whole numbers are expected: ``True`` is an int to Python but
        ``max_retries=True`` is a mistake.
        """
        if not self.request_timeout > 0 or not self.connect_timeout > 0:
            raise ValueError(
                f"timeouts must be positive seconds, got request_timeout={self.request_timeout!r}, "
                f"connect_timeout={self.connect_timeout!r}"
            )
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        if (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be a whole number >= 1, got {self.max_connections!r}"
            )

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str],
        *,
        api_token: str | None = None,
        base_url: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        poll: PollSchedule = DEFAULT_POLL,
        rate_limits: RateLimits | None = DEFAULT_RATE_LIMITS,
        user_agent: str = "areplicate",
        trust_env: bool = True,
    ) -> Config:
        """Build a Config from arguments, falling back to ``environ`` (pure: pass ``os.environ``).

        Raises ValueError naming both ways to give a token when there is none.
        """
        token = api_token if api_token is not None else environ.get(TOKEN_ENV)
        if token is not None and not isinstance(token, str):
            raise TypeError(f"the Replicate API token must be a str, not {type(token).__name__}")
        if token is not None:
            token = token.strip()
        if not token:
            raise ValueError(
                "no Replicate API token: pass Client(api_token='r8_…') or set the "
                f"{TOKEN_ENV} environment variable (tokens: https://replicate.com/account/api-tokens)"
            )
        if any(c.isspace() for c in token):
            raise ValueError("the Replicate API token contains whitespace; check how it was copied")
        url = base_url if base_url is not None else environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        shared = environ.get(REDIS_URL_ENV, "").strip()
        if shared and isinstance(rate_limits, RateLimits) and rate_limits.shared is None:
            rate_limits = attrs.evolve(rate_limits, shared=shared)
        return cls(
            api_token=token,
            base_url=normalize_base_url(url),
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            max_connections=max_connections,
            poll=poll,
            rate_limits=rate_limits,
            user_agent=user_agent,
            trust_env=trust_env,
        )
