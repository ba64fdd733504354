"""The shared request budget: the paces of ``_core/pace.py`` held in Redis, one per token.

Each operation is one atomic Lua script (reserve a slot, learn from a response, pause), so any
number of processes on any number of hosts see one bucket and one learned rate. Time is Redis's
own (``TIME``), so the hosts' clocks never need to agree. The key is a hash of the token, never
the token: nothing secret is stored. State expires after an hour without requests.

Why a script and not ``limits`` or ``pyrate-limiter``: both answer "allowed or not" for a fixed
rate; neither makes a caller wait for a slot at a pace that changes (AIMD) nor holds a pause that
a 429 in one process imposes on all, and both keep the rate in the caller, not in Redis.

Imported only when ``RateLimits(shared=...)`` is set (it needs ``pip install 'areplicate[redis]'``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from areplicate._core.pace import PaceParams

try:
    import redis.asyncio as aioredis
    import redis.exceptions
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "RateLimits(shared=...) needs the redis client: pip install 'areplicate[redis]'"
    ) from exc

__all__ = ["LUA", "SharedPaces", "budget_key", "redis_location"]

#: Seconds a budget's state lives in Redis after its last use.
STATE_TTL = 3600
#: Seconds a Redis call may take before the budget falls back to pacing alone.
REDIS_TIMEOUT = 2.0

# Mirrors _core/pace.py: reserve / paused / throttled / succeeded, field for field.
LUA = """
-- Redis < 5 needs this before writing after TIME; later versions always replicate effects.
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local op = ARGV[1]
local ceiling = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local floor = math.min(tonumber(ARGV[4]), ceiling)
local first = tonumber(ARGV[5])
local decrease = tonumber(ARGV[6])
local recover = tonumber(ARGV[7])
local doubling = tonumber(ARGV[8])
local hold = tonumber(ARGV[9])
local low = tonumber(ARGV[10])
local ttl = tonumber(ARGV[11])
local now = tonumber(ARGV[14])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local s = redis.call('HMGET', key, 'rate', 'threshold', 'step', 'tat', 'grown', 'cut', 'resume', 'peak')
local rate, threshold, step, tat, grown, cut, resume, peak
if s[1] then
  rate = tonumber(s[1]); threshold = tonumber(s[2]); step = tonumber(s[3]); tat = tonumber(s[4])
  grown = tonumber(s[5]); cut = tonumber(s[6]); resume = tonumber(s[7]); peak = tonumber(s[8])
else
  rate = first; threshold = -1; step = 0; grown = now
  tat = now + math.max(burst - math.max(doubling, 1 / first), 0)
  cut = -1e18; resume = 0; peak = 0
end
local function clamp(r) return math.min(ceiling, math.max(floor, r)) end
local function do_cut(target)
  local new = clamp(target)
  local regain = math.max(rate - new, floor)
  rate = new; threshold = new; step = regain / recover; cut = now; grown = now
end
local result = '0'
if op == 'reserve' then
  rate = clamp(rate)
  local interval = 1 / rate
  local tolerance = math.max(burst, interval)
  local base = math.max(tat, now)
  if resume > now then base = math.max(base, resume + tolerance - interval) end
  tat = base + interval
  result = string.format('%.6f', math.max(now, tat - tolerance) - now)
elseif op == 'pause' then
  resume = math.max(resume, now + tonumber(ARGV[12]))
  local interval = 1 / clamp(rate)
  tat = math.max(tat, resume + math.max(burst, interval) - interval)
elseif op == 'throttled' then
  if now - cut >= hold then do_cut(rate * decrease) end
elseif op == 'ok' then
  local remaining = tonumber(ARGV[12])
  local reset = tonumber(ARGV[13])
  local grow = true
  local cap = ceiling
  if remaining then
    peak = math.max(peak, remaining + 1)
    local lw = math.min(rate * low, peak / 4)
    if remaining < lw then
      if not reset then
        grow = false
        grown = now
      elseif reset <= 1 and peak < 4 then
        grow = false
        local st = math.max(step, rate / recover)
        rate = math.min(ceiling, rate + st * math.min(math.max(now - grown, 0), 1))
        grown = now
      else
        local target = math.max(peak - remaining, 1) / math.max(reset, 0.001)
        if target < rate then
          grow = false
          if now - cut < hold then grown = now else do_cut(math.max(target, rate * decrease)) end
        else
          cap = target
        end
      end
    elseif remaining < 2 * lw then
      grow = false
      grown = now
    end
  end
  if grow then
    local elapsed = math.min(math.max(now - grown, 0), 1)
    local new
    if threshold < 0 then
      new = rate * 2 ^ (elapsed / doubling)
    else
      new = rate + math.max(step, rate / recover) * elapsed
    end
    rate = math.max(rate, math.min(cap, ceiling, new))
    grown = now
  end
end
local function f(x) return string.format('%.17g', x) end
redis.call('HSET', key, 'rate', f(rate), 'threshold', f(threshold), 'step', f(step), 'tat', f(tat),
  'grown', f(grown), 'cut', f(cut), 'resume', f(resume), 'peak', f(peak))
redis.call('EXPIRE', key, ttl)
return result
"""


def budget_key(token: str, *, create: bool) -> str:
    """The Redis key of one token's budget: a hash, so the token itself is never stored.

    The digest is salted with a fixed prefix so the key cannot be matched against a plain
    SHA-256 of a leaked token, and cut to 128 bits, plenty to keep accounts apart. Creates and
    other requests get separate keys because the API limits them separately.
    """
    digest = hashlib.sha256(b"areplicate-budget\0" + token.encode()).hexdigest()[:32]
    return f"areplicate:budget:{digest}:{'creates' if create else 'others'}"


def redis_location(url: str) -> str:
    """``scheme://host:port/db`` of a Redis URL, for messages: never its password.

    Defaults are filled in (``localhost``, 6379, db 0) so two spellings of one server read the
    same in logs; a ``unix:`` URL shows its socket path.
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    db = parts.path.lstrip("/") or "0"
    return f"{parts.scheme}://{host}:{port}/{db}"


class SharedPaces:
    """One token's two paces in Redis; every method raises one of ``errors`` if Redis fails."""

    errors: tuple[type[BaseException], ...] = (
        redis.exceptions.RedisError,
        OSError,
        TimeoutError,
    )

    def __init__(self, params: Mapping[bool, PaceParams], url: str, token: str) -> None:
        """Prepare the keys; no connection is made until the first request.

        ``params`` are the two paces' parameters (creates: True, other requests: False), which the
        budget derives from its RateLimits. ``token`` is used only to derive the two keys (creates
        and other requests have separate paces, as in the in-process budget); it is not kept.
        """
        self.where = redis_location(url)
        self._url = url
        self._keys = {create: budget_key(token, create=create) for create in (True, False)}
        self._params = dict(params)
        self._redis: Any = None
        self._script: Any = None

    def __repr__(self) -> str:
        return f"<SharedPaces {self.where}>"

    def _connection(self) -> Any:
        """The registered script, connecting on first use.

        Timeouts are short on purpose (``REDIS_TIMEOUT``): when Redis is slow the budget falls back
        to pacing in this process, which beats stalling every request on a shared dependency.
        """
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self._url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                health_check_interval=30,
            )
            self._script = self._redis.register_script(LUA)
        return self._script

    def args(
        self, create: bool, op: str, a: object = "", b: object = "", now: object = ""
    ) -> list[Any]:
        """The script's ARGV for ``op`` on one class of request.

        The order is the script's ``ARGV[1..14]``; ``a`` and ``b`` are the operation's own
        arguments (remaining and reset for ``ok``, seconds for ``pause``), ``""`` when absent, and
        ``now`` is left empty so the script reads Redis's clock (tests pass a time to make runs
        repeatable).
        """
        p = self._params[create]
        return [
            op, p.ceiling, p.burst, p.lowest, p.first, p.decrease, p.recover, p.doubling,
            p.hold, p.low, STATE_TTL, "" if a is None else a, "" if b is None else b, now,
        ]  # fmt: skip

    async def _run(self, create: bool, op: str, a: object = "", b: object = "") -> Any:
        """Run the script once for ``op`` on the key of one class of request; returns its reply."""
        script = self._connection()
        return await script(keys=[self._keys[create]], args=self.args(create, op, a, b))

    async def reserve(self, create: bool) -> float:
        """Take a slot in the shared bucket; the seconds to wait for it.

        The slot is taken when this returns, not when the caller's sleep ends: a caller that is
        cancelled while waiting still used its slot, so the pace errs on the slow side.
        """
        return float(await self._run(create, "reserve"))

    async def observe(
        self, create: bool, ok: bool, remaining: float | None, reset: float | None
    ) -> None:
        """Learn from one response, for every process.

        ``ok`` is False for a 429 (the rate is cut, once per hold period however many processes
        saw it); otherwise ``remaining`` and ``reset`` are the response's rate-limit headers, or
        None when it had none, and the rate grows toward what they allow.
        """
        if ok:
            await self._run(create, "ok", remaining, reset)
        else:
            await self._run(create, "throttled")

    async def pause(self, seconds: float) -> None:
        """Hold every process's requests for ``seconds`` (a 429's Retry-After), both classes.

        A pause only ever lengthens one already in force, so two processes reporting the same
        429 do not stack their waits.
        """
        for create in (True, False):
            await self._run(create, "pause", seconds)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._redis is not None:
            redis_client, self._redis = self._redis, None
            await redis_client.aclose()
