"""Rate limits and injected faults: counters, and 429/5xx bodies and headers in the real API's forms
(docs/api-notes.md#rate-limits)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from areplicate.testing import FakeRateLimits, FakeReplicate, Faults, TokenBucket

THROTTLED_1S = {"detail": "Request was throttled. Expected available in 1 second.", "status": 429}


async def upper(text: str = "x") -> str:
    return text.upper()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestTokenBucket:
    def test_burst_then_refill(self) -> None:
        clock = Clock()
        bucket = TokenBucket(60, 2, clock=clock)  # one token a second
        assert (bucket.take(), bucket.take()) == (None, None)
        assert bucket.take() == pytest.approx(1.0)
        assert (bucket.remaining, bucket.reset) == (0, 2)
        clock.now += 0.25
        assert bucket.take() == pytest.approx(0.75)
        clock.now += 0.75
        assert bucket.take() is None
        clock.now += 60
        assert bucket.remaining == 2, "never more than the capacity"

    def test_real_limits(self) -> None:
        real = FakeRateLimits.real()
        assert (real.creates_per_minute, real.creates_burst) == (600, 100)
        assert (real.others_per_minute, real.others_burst) == (3000, 500)
        with pytest.raises(ValueError, match="creates_burst"):
            FakeRateLimits(creates_burst=0)


class TestRateLimits:
    async def test_creates_are_throttled_with_the_api_body(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(rate_limits=FakeRateLimits(creates_per_minute=30, creates_burst=2))
        fake.add_model("acme/upper", upper)
        async with fake.serve() as base_url:
            url = f"{base_url}/models/acme/upper/predictions"
            replies = [await http.post(url, json={"input": {}}) for _ in range(3)]
            assert [r.status for r in replies] == [201, 201, 429]
            assert [r.headers["ratelimit-remaining"] for r in replies] == ["1", "0", "0"]
            throttled = replies[2]
            assert throttled.json == {
                "detail": "Request was throttled. Expected available in 2 seconds.",
                "status": 429,
            }
            assert throttled.headers["Retry-After"] == "2"
            assert throttled.content_type == "application/problem+json"
            other = await http.get(f"{base_url}/predictions")
            assert other.status == 200, "other routes have their own bucket"
            assert int(other.headers["ratelimit-remaining"]) == 499
        assert len(fake.predictions) == 2, "a throttled create makes nothing"
        assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 3
        assert fake.status_counts[429] == 1
        assert fake.requests[2].fault is None

    async def test_longer_waits_are_plural(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(rate_limits=FakeRateLimits(others_per_minute=20, others_burst=1))
        async with fake.serve() as base_url:
            assert (await http.get(f"{base_url}/account")).status == 200
            reply = await http.get(f"{base_url}/hardware")
        assert reply.json == {
            "detail": "Request was throttled. Expected available in 3 seconds.",
            "status": 429,
        }
        assert reply.headers["Retry-After"] == "3"

    async def test_real_limits_report_the_burst(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(rate_limits="real")
        fake.add_model("acme/upper", upper)
        async with fake.serve() as base_url:
            create = await http.post(
                f"{base_url}/models/acme/upper/predictions", json={"input": {}}
            )
            read = await http.get(f"{base_url}/predictions")
        assert create.headers["ratelimit-remaining"] == "99"
        assert read.headers["ratelimit-remaining"] == "499"
        assert read.headers["ratelimit-reset"] == "1"

    async def test_streams_and_deliveries_are_not_limited(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(rate_limits=FakeRateLimits(others_per_minute=1, others_burst=1))

        async def words() -> Any:
            yield "w"

        fake.add_model("acme/words", words)
        async with fake.serve() as base_url:
            created = (
                await http.post(
                    f"{base_url}/models/acme/words/predictions",
                    json={"input": {}},
                    headers={"Prefer": "wait"},
                )
            ).json
            for _ in range(3):
                assert (await http.get(created["urls"]["stream"], token=None)).status == 200


class TestFaults:
    async def test_every_request_429(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(faults=Faults(error_429_rate=1.0))
        fake.add_model("acme/upper", upper)
        async with fake.serve() as base_url:
            create = await http.post(
                f"{base_url}/models/acme/upper/predictions", json={"input": {}}
            )
            read = await http.get(f"{base_url}/predictions")
        for reply in (create, read):
            assert (reply.status, reply.json) == (429, THROTTLED_1S)
            assert reply.headers["Retry-After"] == "1"
        assert fake.predictions == []
        assert [r.fault for r in fake.requests] == ["429", "429"]
        assert fake.counts == {
            "POST /v1/models/{owner}/{name}/predictions": 1,
            "GET /v1/predictions": 1,
        }

    @pytest.mark.parametrize("status", [500, 503])
    async def test_5xx_as_problem_json(
        self, make_fake: Callable[..., FakeReplicate], http: Any, status: int
    ) -> None:
        fake = make_fake(faults=Faults(error_5xx_rate=1.0, error_5xx_statuses=(status,)))
        async with fake.serve() as base_url:
            reply = await http.get(f"{base_url}/account")
        assert reply.status == status
        assert reply.content_type == "application/problem+json"
        assert reply.json["status"] == status
        assert fake.requests[0].fault == "5xx"

    async def test_502_is_a_proxy_html_page(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(faults=Faults(error_5xx_rate=1.0, error_5xx_statuses=(502,)))
        fake.add_model("acme/upper", upper)
        async with fake.serve() as base_url:
            reply = await http.post(f"{base_url}/models/acme/upper/predictions", json={"input": {}})
        assert reply.status == 502
        assert reply.content_type == "text/html"
        assert b"502 Bad Gateway" in reply.body
        assert fake.predictions == [], "a 5xx fault strikes before the request is processed"

    async def test_dropped_connection_after_processing(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(faults=Faults(drop_rate=1.0))
        fake.add_model("acme/upper", upper)
        async with fake.serve() as base_url:
            with pytest.raises(aiohttp.ClientPayloadError):
                await http.post(f"{base_url}/models/acme/upper/predictions", json={"input": {}})
            await fake.wait_idle()
        assert len(fake.predictions) == 1, "the create was processed; only its answer was lost"
        assert fake.predictions[0]["status"] == "succeeded"
        assert fake.requests[0].fault == "drop"
        assert fake.requests[0].status == 201

    async def test_seeded_faults_repeat_and_add_up(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        outcomes = []
        for _ in range(2):
            fake = make_fake(faults=Faults(error_429_rate=0.2, error_5xx_rate=0.2, seed=7))
            async with fake.serve() as base_url:
                statuses = [(await http.get(f"{base_url}/hardware")).status for _ in range(60)]
            outcomes.append(statuses)
            assert fake.counts["GET /v1/hardware"] == 60
            assert sum(fake.status_counts.values()) == 60
            faults = [r.fault for r in fake.requests]
            assert faults.count("429") == fake.status_counts[429]
            assert faults.count("5xx") == sum(n for s, n in fake.status_counts.items() if s >= 500)
        assert outcomes[0] == outcomes[1], "the same seed gives the same faults"
        assert {200, 429} <= set(outcomes[0])
        assert any(s >= 500 for s in outcomes[0])

    async def test_routes_filter_and_latency(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(
            faults=Faults(error_429_rate=1.0, latency=0.3, routes=["GET /v1/predictions"])
        )
        async with fake.serve() as base_url:
            loop = asyncio.get_running_loop()
            start = loop.time()
            limited = await http.get(f"{base_url}/predictions")
            assert loop.time() - start >= 0.3
            start = loop.time()
            other = await http.get(f"{base_url}/account")
            assert loop.time() - start < 0.3
        assert (limited.status, other.status) == (429, 200)

    def test_invalid_faults(self) -> None:
        with pytest.raises(ValueError, match="between 0 and 1"):
            Faults(drop_rate=1.5)
        with pytest.raises(ValueError, match="must not exceed 1"):
            Faults(error_429_rate=0.6, error_5xx_rate=0.6)
        with pytest.raises(ValueError, match="5xx"):
            Faults(error_5xx_statuses=(404,))
