"""Listings against ``next`` links that never end: every listing stops, and says why when it must.

- A scan for predictions created after a time stops at the first page that reaches older ones
  (the API lists newest first), and never yields those older ones.
- Any listing stops cleanly at a ``next`` link it has followed before, and after a few pages in a
  row that bring nothing new (empty, or only items already yielded).
- A ``next`` link that leaves the listing (another path) or is absurdly long raises
  UnexpectedResponseError instead of being followed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp import web

import areplicate
from tests.hostile.server import Hostile, json_response, prediction_body

LIST = "/v1/predictions"
CUTOFF = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def stamp(minutes_after_cutoff: float) -> str:
    when = CUTOFF + dt.timedelta(minutes=minutes_after_cutoff)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def endless(page: Any) -> Any:
    """A listing whose every page links to a fresh cursor; ``page(n)`` gives page n's results."""

    async def handler(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("cursor", "0"))
        nxt = f"https://api.replicate.com{request.path}?cursor={n + 1}"
        return web.json_response({"results": page(n), "next": nxt, "previous": None})

    return handler


async def test_a_scan_since_a_time_stops_at_older_predictions(
    hostile: Hostile, client: areplicate.Client
) -> None:
    """Pages go back in time forever, each with fresh predictions: the scan stops at the cutoff."""

    def page(n: int) -> list[dict[str, Any]]:
        # Two a page, one minute apart, going back from 3 minutes after the cutoff.
        return [
            prediction_body(f"p{2 * n + i}", input={"x": 1}, created_at=stamp(3 - 2 * n - i))
            for i in range(2)
        ]

    hostile.on("GET", LIST, endless(page))
    async with asyncio.timeout(10):
        listed = [p.id async for p in client.predictions.list(created_after=CUTOFF)]
        found = await client.predictions.find({"x": 1}, created_after=CUTOFF)
    assert listed == ["p0", "p1", "p2", "p3"]  # 3, 2, 1 and 0 minutes after; p4 is older
    assert [p.id for p in found] == listed
    assert hostile.count("GET", LIST) == 2 * 3  # pages 0, 1 and 2 (which reached p4), twice


async def test_pages_that_repeat_the_same_items_end_the_listing(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", LIST, endless(lambda n: [prediction_body("p1"), prediction_body("p2")]))
    async with asyncio.timeout(10):
        listed = [p.id async for p in client.predictions.list()]
    assert listed == ["p1", "p2"]
    assert hostile.count("GET", LIST) <= 5


async def test_empty_pages_with_next_links_end_the_listing(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", LIST, endless(lambda n: [prediction_body("p1")] if n == 0 else []))
    async with asyncio.timeout(10):
        listed = [p.id async for p in client.predictions.list()]
    assert listed == ["p1"]
    assert hostile.count("GET", LIST) <= 5


async def test_a_next_link_seen_before_ends_the_listing(
    hostile: Hostile, client: areplicate.Client
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("cursor", "0"))
        # Page 0 -> 1 -> 2 -> 1 -> ...: fresh items on each, but the chain loops.
        nxt = f"{request.path}?cursor={1 if n == 2 else n + 1}"
        return web.json_response({"results": [prediction_body(f"p{n}")], "next": nxt})

    hostile.on("GET", LIST, handler)
    async with asyncio.timeout(10):
        listed = [p.id async for p in client.predictions.list()]
    assert listed == ["p0", "p1", "p2"]
    assert hostile.count("GET", LIST) == 3


async def test_endless_links_end_every_listing_not_only_predictions(
    hostile: Hostile, client: areplicate.Client
) -> None:
    hostile.on("GET", "/v1/trainings", endless(lambda n: [prediction_body("t1")]))
    async with asyncio.timeout(10):
        listed = [t.id async for t in client.trainings.list()]
    assert listed == ["t1"]
    assert hostile.count("GET", "/v1/trainings") <= 5


@pytest.mark.parametrize(
    "link",
    [
        "https://api.replicate.com/v1/account?cursor=1",
        "https://api.replicate.com/v1/predictions?cursor=" + "x" * 100_000,
    ],
    ids=["another-path", "absurdly-long"],
)
async def test_a_next_link_that_leaves_the_listing_is_a_clear_error(
    hostile: Hostile, client: areplicate.Client, link: str
) -> None:
    hostile.on("GET", LIST, json_response({"results": [prediction_body("p1")], "next": link}))
    hostile.on("GET", "/v1/account", json_response({"type": "user", "username": "u"}))
    listed: list[str] = []

    async def scan() -> None:
        async for p in client.predictions.list():
            listed.append(p.id)

    async with asyncio.timeout(10):
        with pytest.raises(areplicate.UnexpectedResponseError, match="next link") as caught:
            await scan()
    assert listed == ["p1"]  # what the page held was delivered first
    assert len(str(caught.value)) < 1000
    assert hostile.count("GET", LIST) == 1
    assert hostile.count("GET", "/v1/account") == 0


async def test_endless_links_end_the_file_listing_too(
    hostile: Hostile, client: areplicate.Client
) -> None:
    """``files.list`` followed links on its own, without the listing guards (it never ended)."""
    file = {"id": "f1", "name": "a.png", "content_type": "image/png", "size": 1, "urls": {}}
    hostile.on("GET", "/v1/files", endless(lambda n: [file]))
    async with asyncio.timeout(10):
        listed = [f.id async for f in client.files.list()]
    assert listed == ["f1"]
    assert hostile.count("GET", "/v1/files") <= 5
