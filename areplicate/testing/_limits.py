"""Rate limits (token buckets) and injected faults for the fake server.

Replicate allows 600 prediction creates a minute and 3000 other requests a minute, "with short
bursts" (docs/api-notes.md#rate-limits). The burst sizes are not published; the fake's
``FakeRateLimits.real()`` chooses 100 creates and 500 other requests: a bucket that starts full,
refills continuously at the per-minute rate and rejects a request when less than one token is left.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection

import attrs

__all__ = ["FakeRateLimits", "Fault", "FaultDice", "Faults", "TokenBucket"]


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class FakeRateLimits:
    """The fake server's rate limits: two token buckets, per minute, with a burst capacity.

    ``creates_*`` covers the three prediction-create routes, ``others_*`` every other API route
    (SSE streams and delivery URLs are not limited: they are other hosts on the real service).
    Gotcha: a bucket starts full, so the first ``*_burst`` requests always pass; tests that want
    429s quickly use a small burst, benchmarks use :meth:`real`.
    """

    creates_per_minute: float = attrs.field(default=600.0, validator=_positive)
    creates_burst: float = attrs.field(default=100.0, validator=_positive)
    others_per_minute: float = attrs.field(default=3000.0, validator=_positive)
    others_burst: float = attrs.field(default=500.0, validator=_positive)

    @classmethod
    def real(cls) -> FakeRateLimits:
        """Replicate's published rates (600 and 3000 a minute) with bursts of 100 and 500."""
        return cls()

    @classmethod
    def parse(cls, spec: str) -> FakeRateLimits:
        """Limits from text: ``"real"``, or ``CREATES/BURST[,OTHERS/BURST]`` per minute.

        ``"120/10"`` is an account allowed 120 creates a minute with a burst of 10 (other requests
        at the real 3000 a minute, burst 500); ``"6/1"`` a low-credit one; ``"120/10,600/50"``
        limits the other requests too. Gotcha: the numbers are per minute, not per second.
        """
        text = spec.strip().lower()
        if text == "real":
            return cls.real()
        parts = [p.strip() for p in text.split(",")]
        pairs: list[tuple[float, float]] = []
        try:
            for part in parts:
                rate, _, burst = part.partition("/")
                pairs.append((float(rate), float(burst)))
        except ValueError:
            pairs = []
        if not 1 <= len(pairs) <= 2 or not all(r > 0 and b > 0 for r, b in pairs):
            raise ValueError(
                f"rate limits {spec!r}: expected 'real' or CREATES/BURST[,OTHERS/BURST] per "
                "minute, e.g. '120/10' (120 creates a minute, burst 10)"
            )
        creates, creates_burst = pairs[0]
        if len(pairs) == 1:
            return cls(creates_per_minute=creates, creates_burst=creates_burst)
        others, others_burst = pairs[1]
        return cls(creates, creates_burst, others, others_burst)


class TokenBucket:
    """A continuously refilled token bucket. ``clock`` returns seconds (monotonic by default).

    Gotcha: not thread-safe; the fake uses each bucket from its event loop only.
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "capacity", "rate")

    def __init__(
        self, per_minute: float, capacity: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._tokens

    def take(self) -> float | None:
        """Take one token: None on success, else the seconds until one is available."""
        tokens = self._refill()
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return None
        return (1.0 - tokens) / self.rate

    @property
    def remaining(self) -> int:
        """Whole tokens left now (the ``ratelimit-remaining`` header)."""
        return math.floor(self._refill())

    @property
    def reset(self) -> int:
        """Whole seconds until the bucket is full again, at least 1 (``ratelimit-reset``)."""
        missing = self.capacity - self._refill()
        return max(1, math.ceil(missing / self.rate))


class Fault:
    """The kinds of injected fault, as recorded in ``RequestRecord.fault``."""

    RATE_LIMIT = "429"
    SERVER_ERROR = "5xx"
    DROP = "drop"


def _routes(value: Collection[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class Faults:
    """Faults the fake injects into API responses, chosen by a seeded random generator.

    - ``error_429_rate``: fraction answered 429 (the real throttle body, ``Retry-After: 1``)
      *before* the request is processed, so a 429'd create never made a prediction.
    - ``error_5xx_rate``: fraction answered with one of ``error_5xx_statuses``, also before
      processing; 502 comes as an HTML page (a proxy's), the others as problem+json.
    - ``drop_rate``: fraction processed normally whose response is cut after half its body and the
      connection aborted. Gotcha: a dropped create *did* make a prediction; that is the point.
    - ``latency``: seconds added before every matching request (a ``(low, high)`` pair draws
      uniformly).
    - ``routes``: route keys (``"POST /v1/predictions"``, as in ``FakeReplicate.counts``) to
      affect; None means every API route (never SSE streams or delivery URLs unless listed).
    """

    error_429_rate: float = 0.0
    error_5xx_rate: float = 0.0
    drop_rate: float = 0.0
    latency: float | tuple[float, float] = 0.0
    seed: int | None = None
    routes: frozenset[str] | None = attrs.field(default=None, converter=_routes)
    error_5xx_statuses: tuple[int, ...] = (500, 502, 503)

    def __attrs_post_init__(self) -> None:
        for name in ("error_429_rate", "error_5xx_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, got {value!r}")
        if self.error_429_rate + self.error_5xx_rate > 1.0:
            raise ValueError("Faults.error_429_rate + error_5xx_rate must not exceed 1")
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency,) * 2
        if low < 0 or high < low:
            raise ValueError(
                f"Faults.latency must be >= 0 (or a (low, high) pair), got {self.latency!r}"
            )
        if not self.error_5xx_statuses or any(not 500 <= s <= 599 for s in self.error_5xx_statuses):
            raise ValueError("Faults.error_5xx_statuses must be a non-empty tuple of 5xx codes")

    def applies_to(self, route: str, *, api: bool) -> bool:
        """Whether requests to ``route`` are subject to these faults."""
        if self.routes is None:
            return api
        return route in self.routes


class FaultDice:
    """The random decisions for one FakeReplicate (one generator, seeded from ``Faults.seed``)."""

    __slots__ = ("_rng", "faults")

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)

    def latency(self) -> float:
        """Seconds to delay this request."""
        latency = self.faults.latency
        if isinstance(latency, tuple):
            return self._rng.uniform(*latency)
        return latency

    def before(self) -> str | None:
        """``Fault.RATE_LIMIT``, ``Fault.SERVER_ERROR`` or None (process the request)."""
        f = self.faults
        if not (f.error_429_rate or f.error_5xx_rate):
            return None
        roll = self._rng.random()
        if roll < f.error_429_rate:
            return Fault.RATE_LIMIT
        if roll < f.error_429_rate + f.error_5xx_rate:
            return Fault.SERVER_ERROR
        return None

    def status_5xx(self) -> int:
        """Which 5xx to answer."""
        return self._rng.choice(self.faults.error_5xx_statuses)

    def drop(self) -> bool:
        """Whether to cut this response mid-body."""
        return bool(self.faults.drop_rate) and self._rng.random() < self.faults.drop_rate
