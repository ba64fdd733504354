"""The budget learns an account's real limit: a low-credit account's fan-outs finish without a
storm of 429s. Rates are scaled up (the fake's and the client's alike) to keep the suite fast;
``benchmarks/shared_budget.py --account 120/10`` runs the real ones."""

from __future__ import annotations

import asyncio

import pytest

import areplicate
from areplicate.testing import FakeRateLimits, FakeReplicate


async def fan_out(
    account: FakeRateLimits, ceiling: areplicate.RateLimits, n: int, concurrency: int
) -> tuple[list[areplicate.Prediction], FakeReplicate]:
    fake = FakeReplicate(rate_limits=account)

    async def quick(n: int = 0) -> int:
        return n

    fake.add_model("acme/quick", quick)
    async with (
        fake.serve() as url,
        areplicate.Client(
            "r8_low_credit", base_url=url, rate_limits=ceiling, max_connections=concurrency
        ) as client,
    ):
        async with asyncio.timeout(120):
            results = await areplicate.gather_predictions(
                client, "acme/quick", [{"n": i} for i in range(n)], concurrency=concurrency
            )
    return results, fake


@pytest.mark.slow
async def test_an_account_limited_to_120_creates_a_minute_sees_few_429s() -> None:
    """120 creates a minute, burst 10, against a client configured for Replicate's 600 (both
    scaled 20x): 300 creates at concurrency 100 finish, no error, under 5 % of requests 429."""
    scale = 20
    account = FakeRateLimits(creates_per_minute=120 * scale, creates_burst=10)
    ceiling = areplicate.RateLimits(
        creates_per_minute=600 * scale, requests_per_minute=3000 * scale
    )
    results, fake = await fan_out(account, ceiling, 300, 100)
    assert [r.output for r in results] == list(range(300))
    assert len(fake.predictions) == 300
    throttled = fake.status_counts[429]
    assert throttled < 0.05 * len(fake.requests), f"{throttled} of {len(fake.requests)} got 429"


@pytest.mark.slow
async def test_a_six_a_minute_account_with_a_burst_of_one_still_finishes_a_fan_out() -> None:
    """6 creates a minute with a burst of 1 (scaled 60x, to one every 1/6 s) and a client set for
    600 a minute (unscaled: 10 a second): a 30-item fan-out finishes with no error."""
    account = FakeRateLimits(creates_per_minute=6 * 60, creates_burst=1)
    results, fake = await fan_out(account, areplicate.RateLimits(), 30, 30)
    assert [r.output for r in results] == list(range(30))
    assert len(fake.predictions) == 30
