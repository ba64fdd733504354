"""Client configuration: argument > environment > default, resolved once into a frozen Config."""

from __future__ import annotations

from collections.abc import Mapping

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
    "DEFAULT_TIMEOUT",
    "Config",
    "RateLimits",
    "TOKEN_ENV",
]

TOKEN_ENV = "REPLICATE_API_TOKEN"
BASE_URL_ENV = "REPLICATE_BASE_URL"

#: Seconds to wait for any one read of a response (a ``Prefer: wait`` create gets its wait on top).
DEFAULT_TIMEOUT = 30.0
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
    """

    creates_per_minute: float = 600.0
    requests_per_minute: float = 3000.0
    burst: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.creates_per_minute <= 0 or self.requests_per_minute <= 0 or self.burst <= 0:
            raise ValueError(
                "RateLimits values must be positive; pass rate_limits=None to turn pacing off"
            )


DEFAULT_RATE_LIMITS = RateLimits()
DEFAULT_POLL = PollSchedule()


@attrs.frozen
class Config:
    """Everything a Client needs, resolved. The token is never part of the repr."""

    api_token: str = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    poll: PollSchedule = DEFAULT_POLL
    rate_limits: RateLimits | None = DEFAULT_RATE_LIMITS
    user_agent: str = "areplicate"

    def __attrs_post_init__(self) -> None:
        if not self.timeout > 0 or not self.connect_timeout > 0:
            raise ValueError(
                f"timeouts must be positive seconds, got timeout={self.timeout!r}, "
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
        **options: object,
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
        return cls(api_token=token, base_url=normalize_base_url(url), **options)  # type: ignore[arg-type]
