"""examples/fastapi_app.py as two uvicorn workers sharing a real Redis: a webhook delivery that
lands on the other worker still ends the wait, at once (no fallback poll).

Under ``uvicorn --workers 2`` the kernel picks the worker for each connection, so which deliveries
land "wrong" is luck (often none). Here the two workers are two uvicorn processes, and the app's
public URL names the second: every wait runs in the first, every delivery lands on the second, so
every wait can only end through the relay. Without it they would end at the receiver's first
fallback poll, 30 s later; with it, all end within seconds and the fake sees no poll at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from areplicate.testing import FakeReplicate
from tests.budget._redis import RedisServer, redis_server

__all__ = ["redis_server"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()

    async def upper(text: str = "") -> str:
        await asyncio.sleep(0.5)
        return text.upper()

    fake.add_model("acme/upper", upper)
    async with fake.serve() as url:
        yield fake, url


def start_worker(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)


async def until_serving(
    http: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes]
) -> None:
    with anyio.fail_after(30):
        while True:
            assert process.poll() is None, "uvicorn exited before it served"
            try:
                async with http.get(f"{url}/predictions/none") as resp:
                    if resp.status == 404:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
async def workers(
    fake: tuple[FakeReplicate, str], redis_server: RedisServer
) -> AsyncIterator[tuple[str, str]]:
    """Two workers of the app; the app's public (webhook) URL is the second's."""
    redis_server.flush()
    first, second = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "REPLICATE_API_TOKEN": "r8_workers",
        "REPLICATE_BASE_URL": fake[1],
        "PUBLIC_URL": second,
        "AREPLICATE_REDIS_URL": redis_server.url,
    }
    env.pop("OUTPUT_DIR", None)
    processes = [start_worker(int(url.rsplit(":", 1)[1]), env) for url in (first, second)]
    try:
        async with aiohttp.ClientSession() as http:
            for url, process in zip((first, second), processes, strict=True):
                await until_serving(http, url, process)
        yield first, second
    finally:
        for process in processes:
            stop(process)


async def test_a_delivery_on_the_other_worker_ends_the_wait(
    fake: tuple[FakeReplicate, str], workers: tuple[str, str]
) -> None:
    server, _ = fake
    waiting_worker, receiving_worker = workers

    async def run(i: int) -> object:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{waiting_worker}/run", json={"model": "acme/upper", "input": {"text": f"t{i}"}}
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return (await resp.json())["output"]

    with anyio.fail_after(20):  # the receivers' first fallback poll would come after 30 s
        outputs = await asyncio.gather(*(run(i) for i in range(20)))
    assert outputs == [f"T{i}" for i in range(20)]
    assert server.counts["GET /v1/predictions/{id}"] == 0
    delivered_to = {d.url for d in server.webhook_deliveries}
    assert delivered_to == {f"{receiving_worker}/webhooks/replicate"}
