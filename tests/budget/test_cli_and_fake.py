"""The CLI's pacing options and the fake's per-token limits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import pytest

import areplicate
from areplicate._cli import _common
from areplicate._cli._common import CLIError, add_budget_arguments, budget_options, make_client
from areplicate.testing import FakeRateLimits, FakeReplicate
from areplicate.testing.__main__ import parser as fake_parser

ENV = {"REPLICATE_API_TOKEN": "r8_cli", "REPLICATE_BASE_URL": "http://127.0.0.1:8000/v1"}


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_budget_arguments(p)
    return p.parse_args(argv)


async def test_a_loopback_base_url_no_longer_switches_pacing_off_silently() -> None:
    async with make_client(ENV) as client:
        assert client.config.rate_limits is not None
    async with make_client({**ENV, _common.NO_PACING_ENV: "1"}) as client:
        assert client.config.rate_limits is None


async def test_batch_options_share_or_skip_the_budget() -> None:
    assert budget_options(parse()) == {}
    assert budget_options(parse("--no-pacing")) == {"rate_limits": None}
    shared = budget_options(parse("--redis", "redis://localhost:6379/0"))["rate_limits"]
    assert shared.shared == "redis://localhost:6379/0"
    with pytest.raises(CLIError, match="contradict"):
        budget_options(parse("--no-pacing", "--redis", "redis://localhost:6379/0"))
    with pytest.raises(CLIError, match=r"--redis: .*Redis URL"):
        budget_options(parse("--redis", "localhost:6379"))


def test_batch_help_shows_the_pacing_options(capsys: pytest.CaptureFixture[str]) -> None:
    from areplicate._cli import main

    with contextlib.suppress(SystemExit):
        main(["batch", "--help"])
    out = capsys.readouterr().out
    assert "--redis URL" in out
    assert "--no-pacing" in out


def test_fake_limits_from_text() -> None:
    assert FakeRateLimits.parse("real") == FakeRateLimits.real()
    low = FakeRateLimits.parse("120/10")
    assert (low.creates_per_minute, low.creates_burst) == (120, 10)
    assert (low.others_per_minute, low.others_burst) == (3000, 500)
    both = FakeRateLimits.parse("6/1, 600/5")
    assert (both.others_per_minute, both.others_burst) == (600, 5)
    for bad in ("fast", "120", "0/1", "1/2,3/4,5/6"):
        with pytest.raises(ValueError, match="CREATES/BURST"):
            FakeRateLimits.parse(bad)
    assert FakeReplicate(rate_limits="120/10").rate_limits == low
    args = fake_parser().parse_args(["--rate-limits", "120/10"])
    assert args.rate_limits == "120/10"
    with pytest.raises(SystemExit):
        fake_parser().parse_args(["--rate-limits", "120"])


async def test_the_fakes_limits_hold_per_token_across_connections() -> None:
    fake = FakeReplicate(rate_limits=FakeRateLimits(others_per_minute=1, others_burst=2))
    async with fake.serve() as url:
        clients = [
            areplicate.Client("r8_same", base_url=url, rate_limits=None, max_retries=0)
            for _ in range(2)
        ]
        other = areplicate.Client("r8_other", base_url=url, rate_limits=None, max_retries=0)
        try:
            [h async for h in clients[0].hardware.list()]
            [
                h async for h in clients[1].hardware.list()
            ]  # another connection, same account: the burst is spent
            with pytest.raises(areplicate.RateLimitError):
                async with asyncio.timeout(10):
                    [h async for h in clients[1].hardware.list()]
            [h async for h in other.hardware.list()]  # another account has its own bucket
        finally:
            for c in [*clients, other]:
                await c.aclose()
