"""``Summary`` / ``Tally``: what a fan-out cost, per model (statuses, billed predict_time total,
p50, p95) and overall (wall time, requests per prediction, retries, 429s)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import areplicate
from areplicate.testing import FakeReplicate


def _prediction(pid: str, model: str, status: str, seconds: float | None) -> areplicate.Prediction:
    metrics: dict[str, Any] = {} if seconds is None else {"predict_time": seconds}
    return areplicate.Prediction(id=pid, model=model, status=status, metrics=metrics)


def test_per_model_statuses_and_percentiles() -> None:
    items: list[Any] = [_prediction(f"a{i}", "acme/a", "succeeded", float(i)) for i in range(1, 21)]
    items.append(_prediction("a-failed", "acme/a", "failed", 0.5))
    items.append(_prediction("b1", "acme/b", "canceled", None))
    items.append(areplicate.Completed(index=99, input={}, error=RuntimeError("boom")))
    stats = areplicate.Stats(requests=69, retries=2, throttled=3)
    summary = areplicate.Summary.of(items, wall_time=12.5, stats=stats, model="acme/a")
    a, b = summary.models
    assert a.model == "acme/a"
    assert dict(a.statuses) == {"succeeded": 20, "error": 1, "failed": 1}
    assert a.timed == 21
    assert a.predict_time == pytest.approx(sum(range(1, 21)) + 0.5)
    assert a.predict_time_p50 == 10.0
    assert a.predict_time_p95 == 19.0
    assert (b.model, dict(b.statuses), b.timed, b.predict_time_p50) == (
        "acme/b",
        {"canceled": 1},
        0,
        None,
    )
    assert summary.predictions == 23
    assert summary.requests_per_prediction == pytest.approx(3.0)
    assert str(summary).splitlines() == [
        (
            "acme/a: 22 (20 succeeded, 1 error, 1 failed); predict_time 210.5 s total, "
            "p50 10.00 s, p95 19.00 s"
        ),
        "acme/b: 1 (1 canceled)",
        "Wall time 12.5 s; 69 requests (3.0 per prediction), 2 retries, 3 429s.",
    ]


async def test_a_tally_of_a_fan_out_counts_the_clients_requests() -> None:
    fake = FakeReplicate()

    async def model(i: int) -> int:
        if i == 3:
            raise ValueError("three is bad")
        return i

    fake.add_model("acme/m", model)
    async with (
        fake.serve() as url,
        areplicate.Client(api_token="r8_test", base_url=url, rate_limits=None) as client,
    ):
        await client.run("acme/m", {"i": 0})  # before the tally: not counted
        tally = areplicate.Tally(client, model="acme/m")
        async with asyncio.timeout(30):
            async for done in areplicate.as_completed(
                client, "acme/m", [{"i": i} for i in range(8)]
            ):
                tally.add(done)
        summary = tally.summary()
    (m,) = summary.models
    assert dict(m.statuses) == {"succeeded": 7, "failed": 1}
    assert m.timed == 8
    assert summary.requests is not None
    assert summary.requests >= 8  # a create each, at least
    assert summary.retries == 0
    assert summary.throttled == 0
    assert summary.wall_time > 0
