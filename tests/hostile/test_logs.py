"""What a person reading the logs sees when the API misbehaves: one areplicate WARNING per retry
(what, why, attempt n of m, the delay), an INFO line per 429 waited out, no stamina lines for
areplicate's retries (yet the user's own stamina retries still log), and never the token."""

from __future__ import annotations

import logging

import anyio
import pytest
import stamina
from stamina.instrumentation import LoggingOnRetryHook, set_on_retry_hooks

import areplicate
from tests.hostile.server import (
    TOKEN,
    Hostile,
    drop,
    json_response,
    prediction_body,
    problem,
    sequence,
)

ONE = "/v1/predictions/p1"
GOOD = json_response(prediction_body("p1"))


@pytest.fixture(autouse=True)
def _stamina_logs() -> None:
    # stamina's stock hook (whatever else this machine has installed): its lines are what we silence.
    set_on_retry_hooks([LoggingOnRetryHook])


def lines(caplog: pytest.LogCaptureFixture, name: str = "areplicate") -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == name]


async def test_a_503_is_one_warning_per_retry(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hostile.on("GET", ONE, sequence(problem(503, "Service Unavailable"), problem(503, ""), GOOD))
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    url = f"{hostile.url}/predictions/p1"
    messages = lines(caplog)
    assert len(messages) == 2
    (level1, first), (level2, second) = messages
    assert level1 == level2 == "WARNING"
    assert first.startswith(f"GET {url}: HTTP 503 Service Unavailable; retrying in ")
    assert first.endswith(" s (attempt 2 of 6)")
    assert second.startswith(f"GET {url}: HTTP 503; retrying in ")
    assert second.endswith(" s (attempt 3 of 6)")
    assert lines(caplog, "stamina") == []


async def test_a_dropped_connection_says_so(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # aiohttp itself asks again once when a connection drops: three drops get past it
    hostile.on("GET", ONE, sequence(drop(), drop(), drop(), GOOD))
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    messages = lines(caplog)
    assert messages
    for level, message in messages:
        assert level == "WARNING"
        assert message.startswith(f"GET {hostile.url}/predictions/p1: connection broke (")
        assert message.endswith(" of 6)")
    assert lines(caplog, "stamina") == []


async def test_a_429_is_an_info_line_with_its_wait(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    throttled = problem(429, "Too Many Requests", "", **{"Retry-After": "0.05"})
    hostile.on("GET", ONE, sequence(throttled, throttled, GOOD))
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    url = f"{hostile.url}/predictions/p1"
    assert lines(caplog) == [
        (
            "INFO",
            (
                f"GET {url}: HTTP 429 Too Many Requests (1 in a row); asking again in 0.05 s "
                "(a 429 uses up no retry)"
            ),
        ),
        (
            "INFO",
            (
                f"GET {url}: HTTP 429 Too Many Requests (2 in a row); asking again in 0.05 s "
                "(a 429 uses up no retry)"
            ),
        ),
    ]


async def test_debug_is_one_line_per_request_without_the_query(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="areplicate")
    hostile.on("GET", "/v1/predictions", json_response({"results": [], "next": None}))
    with anyio.fail_after(10):
        await client._session.request("GET", f"{hostile.url}/predictions?cursor=s3cr3t")
    ((level, message),) = lines(caplog)
    assert level == "DEBUG"
    assert message.startswith(f"GET {hostile.url}/predictions?… -> 200 (")
    assert "s3cr3t" not in message


async def test_the_users_own_stamina_retries_still_log(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hostile.on("GET", ONE, sequence(problem(503, ""), GOOD))
    with anyio.fail_after(10):
        await client.predictions.get("p1")  # areplicate's gate is now installed
    calls = 0

    @stamina.retry(on=ValueError, attempts=2)
    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first try fails")

    await flaky()
    (stamina_line,) = lines(caplog, "stamina")
    assert stamina_line[1] == "stamina.retry_scheduled"
    assert len(lines(caplog)) == 1  # the one 503, reported by areplicate


async def test_hooks_set_later_are_gated_again(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hostile.on("GET", ONE, sequence(problem(503, ""), GOOD, problem(503, ""), GOOD))
    with anyio.fail_after(10):
        await client.predictions.get("p1")
        set_on_retry_hooks([LoggingOnRetryHook])  # a library replaces the hooks after ours
        await client.predictions.get("p1")
    assert lines(caplog, "stamina") == []
    assert len(lines(caplog)) == 2


async def test_no_log_line_holds_the_token(
    hostile: Hostile, client: areplicate.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    throttled = problem(429, "Too Many Requests", "", **{"Retry-After": "0"})
    hostile.on("GET", ONE, sequence(throttled, problem(503, ""), drop(), problem(500, ""), GOOD))
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    assert len(caplog.records) >= 4
    for record in caplog.records:
        for text in (record.getMessage(), repr(vars(record))):
            assert TOKEN not in text
            assert TOKEN[3:] not in text
    assert any(seen.headers.get("Authorization") == f"Bearer {TOKEN}" for seen in hostile.requests)
