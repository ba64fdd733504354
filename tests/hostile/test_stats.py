"""``client.stats``: what the client has sent, how many 429s and retries it met, and how its request
budget stands (pace and pause), as a frozen snapshot."""

from __future__ import annotations

import anyio
import attrs
import pytest

import areplicate
from areplicate._budget import Budget
from areplicate._stats import Counters, Stats
from tests.hostile.server import (
    TOKEN,
    Hostile,
    json_response,
    prediction_body,
    problem,
    sequence,
)

ONE = "/v1/predictions/p1"
GOOD = json_response(prediction_body("p1"))


async def test_counts_requests_429s_and_retries(
    hostile: Hostile, client: areplicate.Client
) -> None:
    throttled = problem(429, "Too Many Requests", "", **{"Retry-After": "0"})
    hostile.on("GET", ONE, sequence(throttled, problem(503, ""), GOOD))
    before = client.stats
    assert (before.requests, before.throttled, before.retries) == (0, 0, 0)
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    stats = client.stats
    assert (stats.requests, stats.throttled, stats.retries) == (3, 1, 1)
    assert before.requests == 0  # a snapshot: it did not move
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.requests = 0  # type: ignore[misc]
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    assert (client.stats - stats).requests == 1
    assert client.stats.creates_per_minute is None  # the fixture's client paces nothing
    assert stats.describe() == "3 requests, 1 429, 1 retry, pacing off"


async def test_shows_the_pace_it_has_learnt(hostile: Hostile) -> None:
    hostile.on("GET", ONE, GOOD)
    limits = areplicate.RateLimits(creates_per_minute=600, requests_per_minute=3000)
    async with areplicate.Client(api_token=TOKEN, base_url=hostile.url, rate_limits=limits) as c:
        fresh = c.stats
        assert fresh.creates_per_minute == pytest.approx(600 / 8)  # a fresh pace starts low
        assert fresh.requests_per_minute == pytest.approx(3000 / 8)
        assert fresh.shared is False
        assert "pace 75 creates/min, 375 other requests/min" in fresh.describe()


def test_the_pause_after_a_429_counts_down() -> None:
    now = [100.0]
    budget = Budget(areplicate.RateLimits(), clock=lambda: now[0])
    budget.pause(5.0)  # a local budget: nothing to publish, no loop needed
    assert Stats.of(Counters(), budget).paused_for == pytest.approx(5.0)
    now[0] = 103.5
    stats = Stats.of(Counters(), budget)
    assert stats.paused_for == pytest.approx(1.5)
    assert stats.describe().endswith("paused 1.5 s after a 429")
    now[0] = 200.0
    assert Stats.of(Counters(), budget).paused_for == 0.0
