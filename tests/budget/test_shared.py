"""The shared budget on a real Redis: one bucket, one pause and one learned pace for every process
on a token; nothing secret stored; a clear fallback when Redis is away."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import areplicate
from areplicate import _budget
from areplicate._budget import Budget, pace_params
from areplicate._core.pace import Pace, paused, reserve, succeeded, throttled
from areplicate._redis_budget import LUA, SharedPaces, budget_key
from areplicate.testing import FakeRateLimits, FakeReplicate

from ._redis import RedisServer

TOKEN = "r8_shared_budget_secret_token"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:redis.*")


def limits(url: str, **kw: float) -> areplicate.RateLimits:
    options: dict[str, float] = {"creates_per_minute": 60.0, "requests_per_minute": 600.0}
    options.update(kw)
    return areplicate.RateLimits(shared=url, **options)  # type: ignore[arg-type]


_events = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "ok", "ok-headers", "throttled", "pause"]),
        st.floats(0.0, 2.0),
        st.integers(0, 12),
        st.integers(1, 12),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=_events)
def test_the_lua_script_computes_what_the_python_pace_does(
    redis_url: str, events: list[tuple[str, float, int, int]]
) -> None:
    conn = redis.Redis.from_url(redis_url)
    try:
        script = conn.register_script(LUA)
        configured = limits(redis_url, burst=2.0)
        params = {create: pace_params(configured, create=create) for create in (True, False)}
        shared = SharedPaces(params, redis_url, TOKEN)
        params = shared._params[True]
        key = "areplicate:test:lua"
        conn.delete(key)
        now = 1000.0
        pace: Pace | None = None
        for op, gap, remaining, reset in events:
            now += gap
            if pace is None:  # the script, too, makes the state on its first call
                pace = Pace.fresh(params, now)
            if op == "reserve":
                pace, go = reserve(pace, params, now)
                args = shared.args(True, "reserve", now=now)
                delay = float(script(keys=[key], args=args))
                assert delay == pytest.approx(go - now, abs=1e-5)
                continue
            if op == "ok":
                pace = succeeded(pace, params, now)
                args = shared.args(True, "ok", now=now)
            elif op == "ok-headers":
                pace = succeeded(pace, params, now, float(remaining), float(reset))
                args = shared.args(True, "ok", remaining, reset, now=now)
            elif op == "throttled":
                pace = throttled(pace, params, now)
                args = shared.args(True, "throttled", now=now)
            else:
                pace = paused(pace, params, now + reset)
                args = shared.args(True, "pause", reset, now=now)
            script(keys=[key], args=args)
            stored = {k.decode(): float(v) for k, v in conn.hgetall(key).items()}
            expected = pace._asdict()
            for name, value in expected.items():
                if name == "cut" and value == float("-inf"):
                    assert stored[name] < -1e17
                else:
                    assert stored[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    finally:
        conn.close()


def test_the_lua_script_resumes_at_pace_when_first_asked_after_a_pause(redis_url: str) -> None:
    """As in the Python pace: a pause that has ended before anyone asked again (the queue holder of
    every process sat it out) gives no burst of the time it held everything."""
    conn = redis.Redis.from_url(redis_url)
    try:
        script = conn.register_script(LUA)
        configured = limits(redis_url, creates_per_minute=600.0)
        params = {create: pace_params(configured, create=create) for create in (True, False)}
        shared = SharedPaces(params, redis_url, TOKEN)
        key = "areplicate:test:lua-pause"
        state = Pace(rate=10.0, threshold=10.0, tat=0.0, cut=-1e18)
        conn.hset(key, mapping={k: repr(v) for k, v in state._asdict().items()})
        for _ in range(50):  # the 5 s burst at 10/s, used up: the next slot is due at 1000.1
            assert float(script(keys=[key], args=shared.args(True, "reserve", now=1000.0))) == 0
        script(keys=[key], args=shared.args(True, "pause", 1.0, now=1000.0))
        waits = [
            float(script(keys=[key], args=shared.args(True, "reserve", now=1001.0)))
            for _ in range(5)
        ]
        assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-5)
    finally:
        conn.close()


async def test_two_processes_on_one_token_share_one_bucket(redis_url: str) -> None:
    # Each Budget has its own connection, as two processes would.
    a = Budget(limits(redis_url, creates_per_minute=60.0, burst=1.0), token=TOKEN)
    b = Budget(limits(redis_url, creates_per_minute=60.0, burst=1.0), token=TOKEN)
    other = Budget(limits(redis_url, creates_per_minute=60.0, burst=1.0), token="r8_another")
    try:
        assert a._shared is not None
        assert b._shared is not None
        assert other._shared is not None
        began = time.monotonic()
        first = await a._shared.reserve(True)
        second = await b._shared.reserve(True)
        third = await a._shared.reserve(True)
        # Each answer is a wait from the moment it was asked: what has passed since the first
        # comes off it (a loaded machine can take a noticeable part of a second here).
        passed = time.monotonic() - began
        assert first == 0.0
        # 60 a minute starts at 60/8 a minute: one every 8 s, whichever process asks.
        assert 8.0 - passed - 0.05 <= second <= 8.0 + 0.05
        assert 16.0 - passed - 0.05 <= third <= 16.0 + 0.05
        assert await other._shared.reserve(True) == 0.0  # another account: its own budget
        assert await a._shared.reserve(False) == 0.0  # other requests: their own bucket
    finally:
        for budget in (a, b, other):
            await budget.aclose()


async def test_a_429_seen_by_one_process_pauses_and_slows_all(redis_url: str) -> None:
    a = Budget(limits(redis_url), token=TOKEN)
    b = Budget(limits(redis_url), token=TOKEN)
    try:
        assert b._shared is not None
        await b._shared.reserve(False)
        rate_before = float(
            redis.Redis.from_url(redis_url).hget(budget_key(TOKEN, create=False), "rate")
        )
        await a.observe(429, {}, create=False)
        a.pause(30.0)
        await asyncio.wait_for(asyncio.gather(*a._background), timeout=5)
        delay = await b._shared.reserve(False)
        assert 29.0 < delay <= 30.5
        assert await b._shared.reserve(True) > 29.0  # creates too
        conn = redis.Redis.from_url(redis_url)
        rate_after = float(conn.hget(budget_key(TOKEN, create=False), "rate"))
        conn.close()
        assert rate_after == pytest.approx(rate_before / 2, rel=0.01)
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_holds_no_secret(redis_url: str) -> None:
    async with FakeReplicate().serve() as url:
        pass
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda prompt="": prompt)
    async with (
        fake.serve() as url,
        areplicate.Client(TOKEN, base_url=url, rate_limits=limits(redis_url)) as client,
    ):
        await client.predictions.create_and_wait("acme/echo", {"prompt": "hi"})
    conn = redis.Redis.from_url(redis_url)
    try:
        keys = conn.keys("*")
        assert keys
        dump = b" ".join(keys) + b" ".join(b" ".join(conn.hgetall(k).values()) for k in keys)
        assert TOKEN.encode() not in dump
        assert TOKEN[3:20].encode() not in dump
        assert all(k.startswith(b"areplicate:budget:") for k in keys)
        assert all(0 < conn.ttl(k) <= 3600 for k in keys)
    finally:
        conn.close()


async def test_unreachable_redis_warns_once_and_paces_alone_at_its_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    budget = Budget(limits(dead, requests_per_minute=6000.0, fallback_share=0.5), token=TOKEN)
    try:
        with caplog.at_level(logging.WARNING, logger="areplicate"):
            async with asyncio.timeout(10):
                for _ in range(20):
                    await budget.acquire(create=False)
                    await budget.observe(200, {}, create=False)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "unreachable" in message
        assert "127.0.0.1:1" in message
        assert "50%" in message
        assert "hunter2" not in message
        assert not budget.shared
        local = budget.snapshot(create=False)
        assert local is not None
        assert local.rate <= 6000.0 / 60.0 * 0.5  # its share, never unpaced
    finally:
        await budget.aclose()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_the_budget_goes_back_to_redis_when_it_answers_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_budget, "RECONNECT_AFTER", 0.0)
    binary = shutil.which("redis-server")
    assert binary is not None
    server = RedisServer(binary)
    budget = Budget(limits(server.url), token=TOKEN)
    try:
        with caplog.at_level(logging.WARNING, logger="areplicate"):
            async with asyncio.timeout(20):
                await budget.acquire(create=False)
                assert not budget.shared
                server.start()
                await budget.acquire(create=False)
                assert budget.shared
        messages = [r.getMessage() for r in caplog.records]
        assert any("unreachable" in m for m in messages)
        assert any("answers again" in m for m in messages)
    finally:
        await budget.aclose()
        server.stop()


async def test_rate_limits_shared_from_the_environment(redis_url: str) -> None:
    client = areplicate.Client(
        TOKEN, base_url="http://127.0.0.1:9/v1", environ={"AREPLICATE_REDIS_URL": redis_url}
    )
    assert client.config.rate_limits is not None
    assert client.config.rate_limits.shared == redis_url
    explicit = areplicate.Client(
        TOKEN,
        base_url="http://127.0.0.1:9/v1",
        rate_limits=None,
        environ={"AREPLICATE_REDIS_URL": redis_url},
    )
    assert explicit.config.rate_limits is None  # an explicit "no pacing" wins
    await client.aclose()
    await explicit.aclose()


def test_rate_limits_check_the_url_and_hide_its_password() -> None:
    with pytest.raises(ValueError, match="Redis URL"):
        areplicate.RateLimits(shared="http://localhost:6379")
    with pytest.raises(ValueError, match="fallback_share"):
        areplicate.RateLimits(fallback_share=0.0)
    shown = repr(areplicate.RateLimits(shared="redis://user:s3cret@host:6379/0"))
    assert "s3cret" not in shown
    assert "host:6379" in shown


async def test_many_clients_on_one_fake_share_its_per_token_limit(redis_url: str) -> None:
    """Three clients (as three workers would) on one token against a fake allowing 120 creates a
    minute with a burst of 10 (scaled 10x): no 429 storm, every prediction made once.

    The fake's bucket and the shared budget both run on real time, and a loaded machine can stall
    this process for a second or more; the budget then sends the slots that time held at once, up
    to its ``burst``. The account's burst is half a second's worth at the scaled rate, so the
    clients are told a quarter of a second: what a stall lets out (that, plus the slot each
    client's queue holder already had) fits in the account's bucket of 10, and a stall costs no
    429. With the default 5 s a one-second stall alone sent some 20 creates into it.
    """
    fake = FakeReplicate(
        rate_limits=FakeRateLimits(creates_per_minute=1200, creates_burst=10), record_requests=True
    )
    fake.add_model("acme/echo", lambda n=0: n)
    shared = areplicate.RateLimits(
        creates_per_minute=6000, requests_per_minute=30000, burst=0.25, shared=redis_url
    )
    async with fake.serve() as url:
        clients = [areplicate.Client(TOKEN, base_url=url, rate_limits=shared) for _ in range(3)]
        try:
            async with asyncio.timeout(60):
                results = await asyncio.gather(
                    *(
                        areplicate.gather_predictions(
                            c, "acme/echo", [{"n": 100 * k + i} for i in range(40)], concurrency=20
                        )
                        for k, c in enumerate(clients)
                    )
                )
        finally:
            for c in clients:
                await c.aclose()
    assert sorted(r.output for rs in results for r in rs) == sorted(
        100 * k + i for k in range(3) for i in range(40)
    )
    assert len(fake.predictions) == 120
    assert fake.status_counts[429] < 0.05 * len(fake.requests)
