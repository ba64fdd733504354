"""``await areplicate.run(...)`` on a default client per event loop, closed with its loop; and a
Client reused on another loop says so clearly instead of failing deep inside aiohttp."""

from __future__ import annotations

import asyncio
import gc

import pytest

import areplicate
from areplicate import _default
from areplicate.testing import FakeReplicate, add_demo_models


@pytest.fixture
def fake_url(monkeypatch: pytest.MonkeyPatch) -> object:
    fake = FakeReplicate(record_requests=False)
    add_demo_models(fake)
    with fake.serve_in_thread() as url:
        monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_default_client_test")
        monkeypatch.setenv("REPLICATE_BASE_URL", url)
        monkeypatch.setenv("AREPLICATE_NO_PACING", "1")
        yield url


def test_two_asyncio_runs_in_one_process(fake_url: str) -> None:
    clients: list[areplicate.Client] = []

    async def once(text: str) -> object:
        async with asyncio.timeout(30):
            output = await areplicate.run("demo/echo", {"text": text})
        clients.append(_default.default_client())
        return output

    assert asyncio.run(once("one")) == {"text": "one"}
    assert asyncio.run(once("two")) == {"text": "two"}
    first, second = clients
    assert first is not second  # one per loop
    assert first._session.closed  # closed as its loop shut down
    assert second._session.closed
    del first, second
    clients.clear()
    gc.collect()
    assert len(_default._CLIENTS) == 0  # nothing kept for loops that are gone


def test_one_loop_reuses_its_default_client(fake_url: str) -> None:
    async def main() -> None:
        async with asyncio.timeout(30):
            await areplicate.run("demo/echo", {"text": "a"})
            client = _default.default_client()
            await areplicate.run("demo/echo", {"text": "b"})
            assert _default.default_client() is client
            assert client.stats.requests == 2

    asyncio.run(main())


def test_a_client_used_on_another_loop_says_what_to_do(fake_url: str) -> None:
    client = areplicate.Client()

    async def get() -> object:
        async with asyncio.timeout(30):
            return await client.run("demo/echo", {"text": "x"})

    first = asyncio.new_event_loop()  # asyncio.Runner is 3.11+
    try:
        assert first.run_until_complete(get()) == {"text": "x"}
        with pytest.raises(RuntimeError, match="opened on another event loop") as info:
            asyncio.run(get())
        assert "one Client per event loop" in str(info.value)
        first.run_until_complete(client.aclose())
    finally:
        first.close()
