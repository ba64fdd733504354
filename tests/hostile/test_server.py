"""The hostile server itself does what it says (so a green test elsewhere means the client coped)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.hostile.server import Hostile, drop, problem, raw, sequence, truncated


async def test_unscripted_route_is_a_404(hostile: Hostile) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{hostile.url}/nothing") as resp:
        assert resp.status == 404
        assert "nothing scripted" in (await resp.json())["detail"]
    assert hostile.count("GET", "/v1/nothing") == 1


async def test_sequence_then_repeats_the_last(hostile: Hostile) -> None:
    hostile.on("GET", "/v1/x", sequence(problem(500, "Boom"), raw(b'{"ok": 1}')))
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(f"{hostile.url}/x") as resp:
                statuses.append(resp.status)
    assert statuses == [500, 200, 200]


async def test_truncated_and_dropped_answers_break_the_connection(hostile: Hostile) -> None:
    hostile.on("GET", "/v1/cut", truncated(b'{"id": "p1", "status": "starting"}', keep=5))
    hostile.on("GET", "/v1/drop", drop())
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.get(f"{hostile.url}/cut") as resp:
                await resp.read()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with http.get(f"{hostile.url}/drop") as resp:
                await resp.read()
