"""examples/fastapi_app.py end to end: uvicorn serves the app on 127.0.0.1, the fake Replicate
runs the predictions and POSTs signed webhooks to it over real HTTP."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio
import pytest
import uvicorn

import areplicate
from areplicate import webhooks
from areplicate._outputs import save_outputs
from areplicate.testing import FakeReplicate, FileOut

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"
PIXEL = b"\x89PNG\r\n\x1a\n" + b"pixel" * 100


def load_example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import examples/fastapi_app.py as a module (registered, so pydantic can resolve names)."""
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake() -> FakeReplicate:
    fake = FakeReplicate()

    def upper(text: str = "") -> str:
        return text.upper()

    def pixel(prompt: str = "") -> list[FileOut]:
        return [FileOut(PIXEL, "out-0.png")]

    async def slow(text: str = "") -> str:
        await asyncio.sleep(60)
        return text

    async def chat(prompt: str = "") -> AsyncIterator[str]:
        for i in range(1000):
            yield f"token{i} "
            await asyncio.sleep(0.02)

    fake.add_model("acme/upper", upper)
    fake.add_model("acme/pixel", pixel)
    fake.add_model("acme/slow", slow)
    fake.add_model("acme/chat", chat)
    return fake


class App:
    """The example app served by uvicorn, and an HTTP session to talk to it."""

    def __init__(self, module: ModuleType, url: str, http: aiohttp.ClientSession) -> None:
        self.module = module
        self.url = url
        self.http = http

    @property
    def state(self) -> Any:
        return self.module.app.state

    async def start(self, model: str, input: dict[str, Any]) -> str:
        async with self.http.post(
            f"{self.url}/predictions", json={"model": model, "input": input}
        ) as resp:
            assert resp.status == 201, await resp.text()
            return str((await resp.json())["id"])

    async def shown(self, prediction_id: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}/predictions/{prediction_id}") as resp:
            return resp.status, await resp.json()

    async def until(self, prediction_id: str, done: Any) -> dict[str, Any]:
        """Ask the app until ``done(body)`` holds: the webhooks arrive in their own time."""
        with anyio.fail_after(15):
            while True:
                status, body = await self.shown(prediction_id)
                if status == 200 and done(body):
                    return dict(body)
                await asyncio.sleep(0.02)

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        async with self.http.post(
            f"{self.url}/webhooks/replicate", data=body, headers=headers
        ) as resp:
            return resp.status


@pytest.fixture
async def app(
    fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[App]:
    # Until areplicate re-exports save_outputs, give the example the name it uses (no-op after).
    monkeypatch.setattr(areplicate, "save_outputs", save_outputs, raising=False)
    module = load_example(monkeypatch)
    async with fake.serve() as base_url:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_example")
        monkeypatch.setenv("REPLICATE_BASE_URL", base_url)
        monkeypatch.setenv("PUBLIC_URL", url)
        monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "outputs"))
        monkeypatch.setenv("CHAT_MODEL", "acme/chat")
        monkeypatch.delenv("REPLICATE_WEBHOOK_SECRET", raising=False)
        monkeypatch.delenv("AREPLICATE_REDIS_URL", raising=False)
        server = uvicorn.Server(
            uvicorn.Config(module.app, lifespan="on", ws="none", log_level="warning")
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            with anyio.fail_after(15):
                while not server.started:
                    assert not task.done(), "uvicorn stopped before it started"
                    await asyncio.sleep(0.01)
            async with aiohttp.ClientSession() as http:
                yield App(module, url, http)
        finally:
            server.should_exit = True
            await task
            sock.close()


async def test_a_prediction_started_by_the_app_comes_back_by_webhook(
    app: App, fake: FakeReplicate
) -> None:
    pid = await app.start("acme/upper", {"text": "hello"})
    body = await app.until(pid, lambda b: b["status"] == "succeeded")
    assert body["output"] == "HELLO"
    # the receiver fetched the secret once, and it is the one the fake signs with
    assert fake.counts["GET /v1/webhooks/default/secret"] == 1
    # both requested events arrived over HTTP, were verified and accepted
    mine = [d for d in fake.webhook_deliveries if d.prediction_id == pid]
    assert [d.event for d in mine] == ["start", "completed"]
    assert {d.status for d in mine} == {200}
    assert all(d.url == f"{app.url}/webhooks/replicate" for d in mine)


async def test_file_outputs_are_saved_when_the_prediction_succeeds(app: App) -> None:
    pid = await app.start("acme/pixel", {"prompt": "a llama"})
    body = await app.until(pid, lambda b: b["saved"])
    [saved] = body["saved"]
    assert Path(saved).name == f"{pid}-0-out-0.png"
    assert await anyio.Path(saved).read_bytes() == PIXEL


def signed(secret: str, body: bytes, msg_id: str = "msg_test") -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhooks.sign(secret, msg_id, stamp, body),
    }


PREDICTION = {"id": "forged", "status": "succeeded", "output": "pwned", "urls": {}}


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "no headers", "body changed", "stale", "signed junk"],
)
async def test_deliveries_that_do_not_verify_get_400_and_are_not_recorded(
    app: App, fake: FakeReplicate, case: str
) -> None:
    body = json.dumps(PREDICTION).encode()
    headers = signed(fake.webhook_secret, body)
    if case == "wrong secret":
        headers = signed("whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ==", body)
    elif case == "no headers":
        headers = {"content-type": "application/json"}
    elif case == "body changed":
        body = body.replace(b"pwned", b"owned")
    elif case == "stale":
        stamp = int(time.time()) - 3600
        headers["webhook-timestamp"] = str(stamp)
        headers["webhook-signature"] = webhooks.sign(fake.webhook_secret, "msg_test", stamp, body)
    elif case == "signed junk":
        body = b"[not a prediction]"
        headers = signed(fake.webhook_secret, body)
    assert await app.deliver(body, headers) == 400
    assert (await app.shown("forged"))[0] == 404


async def test_a_repeated_delivery_is_recorded_once(app: App, fake: FakeReplicate) -> None:
    done = json.dumps(PREDICTION).encode()
    earlier = json.dumps({**PREDICTION, "status": "processing", "output": None}).encode()
    assert await app.deliver(done, signed(fake.webhook_secret, done, "msg_1")) == 200
    assert await app.deliver(done, signed(fake.webhook_secret, done, "msg_1")) == 200
    # a late, older state does not replace the finished one
    assert await app.deliver(earlier, signed(fake.webhook_secret, earlier, "msg_0")) == 200
    status, body = await app.shown("forged")
    assert (status, body["status"], body["output"]) == (200, "succeeded", "pwned")
    assert app.state.receiver.duplicates == 1


async def test_run_answers_with_the_output_and_never_polls(app: App, fake: FakeReplicate) -> None:
    async with app.http.post(
        f"{app.url}/run", json={"model": "acme/upper", "input": {"text": "hi"}}
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"output": "HI"}
    assert fake.counts["GET /v1/predictions/{id}"] == 0  # the delivery ended the wait


async def until_canceled(fake: FakeReplicate, model: str, within: float) -> None:
    """The one prediction of ``model`` on the fake is canceled ``within`` seconds."""
    with anyio.fail_after(within):
        while True:
            mine = [p for p in fake.predictions if p.get("model") == model]
            if mine and mine[0]["status"] == "canceled":
                return
            await asyncio.sleep(0.02)


async def until_running(fake: FakeReplicate, model: str) -> None:
    with anyio.fail_after(10):
        while not any(  # noqa: ASYNC110 - polling the fake's state
            p.get("model") == model and p["status"] == "processing" for p in fake.predictions
        ):
            await asyncio.sleep(0.02)


async def test_a_client_that_disconnects_from_run_cancels_its_prediction(
    app: App, fake: FakeReplicate
) -> None:
    host, port = app.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps({"model": "acme/slow", "input": {"text": "x"}}).encode()
    writer.write(
        b"POST /run HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    await until_running(fake, "acme/slow")
    writer.close()  # the user closed the tab
    await writer.wait_closed()
    await until_canceled(fake, "acme/slow", within=1.0)


async def test_a_browser_that_leaves_the_sse_proxy_cancels_the_prediction(
    app: App, fake: FakeReplicate
) -> None:
    async with app.http.get(f"{app.url}/stream", params={"prompt": "hello"}) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        seen = b""
        with anyio.fail_after(10):
            while seen.count(b"event: output") < 2:
                seen += await resp.content.readany()
        resp.close()  # the browser went away after two tokens
    await until_canceled(fake, "acme/chat", within=1.0)
