"""Conformance with a client no one here wrote: the official ``replicate`` package (1.0.7).

Its base URL excludes ``/v1`` (it puts ``/v1`` in its paths). Its stream parser drops events that
lack an ``id:`` line and its ``status`` type lacks ``aborted``, so these tests steer clear of
deadlines.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import replicate
from replicate.exceptions import ModelError, ReplicateError

from areplicate.testing import FakeReplicate, FileOut, log

TOKEN = "r8_official_client_test"


async def upper(text: str) -> str:
    log(f"upper {text}")
    return text.upper()


async def words(prompt: str) -> AsyncIterator[str]:
    for word in prompt.split():
        await asyncio.sleep(0.001)
        yield word + " "


def broken(text: str) -> str:
    raise RuntimeError(f"cannot handle {text}")


async def forever() -> str:
    await asyncio.Event().wait()  # created on the server's loop; ends only by cancellation
    return "never"


def render() -> FileOut:
    return FileOut(b"PNG!", "out.png")


def origin(base_url: str) -> str:
    return base_url.removesuffix("/v1")


@pytest.fixture
def official(make_fake: Callable[..., FakeReplicate]) -> Iterator[tuple[FakeReplicate, Any]]:
    fake = make_fake(token=TOKEN)
    fake.add_model("acme/upper", upper)
    fake.add_model("acme/words", words)
    fake.add_model("acme/broken", broken)
    fake.add_model("acme/forever", forever)
    fake.add_model("acme/render", render)
    fake.add_model("someone/community", upper, official=False)
    with fake.serve_in_thread() as base_url:
        client = replicate.Client(api_token=TOKEN, base_url=origin(base_url))
        client.poll_interval = 0.01
        yield fake, client
        client._client.close()  # the official client never closes its httpx client itself


class TestSync:
    def test_run(self, official: tuple[FakeReplicate, Any]) -> None:
        fake, client = official
        assert client.run("acme/upper", input={"text": "hi"}) == "HI"
        community = client.models.get("someone/community")
        ref = f"someone/community:{community.latest_version.id}"
        assert client.run(ref, input={"text": "yo"}) == "YO"
        output = client.run("acme/words", input={"prompt": "a b c"})
        assert "".join(output) == "a b c "
        with pytest.raises(ModelError, match="cannot handle x"):
            client.run("acme/broken", input={"text": "x"})
        url = client.run("acme/render", input={})  # http: URLs stay strings in this client
        assert client._client.get(url, headers={"Authorization": ""}).content == b"PNG!"
        assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 4
        assert fake.counts["POST /v1/predictions"] == 1
        assert {
            r.headers["Authorization"] for r in fake.requests if r.route.startswith("POST")
        } == {f"Bearer {TOKEN}"}

    def test_predictions_create_get_wait(self, official: tuple[FakeReplicate, Any]) -> None:
        _fake, client = official
        version = client.models.get("acme/upper").latest_version
        prediction = client.predictions.create(version=version.id, input={"text": "abc"})
        assert prediction.status == "starting"
        prediction.wait()
        assert (prediction.status, prediction.output) == ("succeeded", "ABC")
        assert prediction.logs == "upper abc\n"
        again = client.predictions.get(prediction.id)
        assert again.output == "ABC"
        assert again.metrics is not None
        assert "predict_time" in again.metrics
        assert client.models.get("acme/upper").versions.get(version.id).id == version.id
        with pytest.raises(ReplicateError) as info:
            client.predictions.get("missing")
        assert info.value.status == 404

    def test_list_follows_absolute_cursor_links(self, official: tuple[FakeReplicate, Any]) -> None:
        fake, client = official
        for i in range(120):
            client.models.predictions.create(model="acme/upper", input={"text": str(i)})
        first = client.predictions.list()
        assert len(first.results) == 100
        assert first.next is not None
        assert first.next.startswith("http://127.0.0.1:")
        second = client.predictions.list(first.next)
        assert len(second.results) == 20
        assert second.next is None
        ids = [p.id for p in first.results + second.results]
        assert ids == [p["id"] for p in reversed(fake.predictions)]

    def test_cancel(self, official: tuple[FakeReplicate, Any]) -> None:
        fake, client = official
        prediction = client.models.predictions.create(model="acme/forever", input={})
        canceled = client.predictions.cancel(prediction.id)
        assert canceled.status == "canceled"
        assert canceled.completed_at is not None
        assert fake.running == 0

    def test_stream(self, official: tuple[FakeReplicate, Any]) -> None:
        _, client = official
        events = list(client.stream("acme/words", input={"prompt": "one two three"}))
        assert "".join(str(e) for e in events) == "one two three "
        assert events[-1].event.value == "done"
        with pytest.raises(ReplicateError, match="does not support streaming"):
            list(client.stream("acme/upper", input={"text": "x"}))

    def test_files(self, official: tuple[FakeReplicate, Any]) -> None:
        _, client = official
        created = client.files.create(
            io.BytesIO(b"hello"), filename="hello.txt", metadata={"purpose": "test"}
        )
        assert (created.name, created.size, created.content_type) == ("hello.txt", 5, "text/plain")
        assert created.etag == created.checksums["md5"] == "5d41402abc4b2a76b9719d911017c592"
        assert created.metadata == {"purpose": "test"}
        assert client.files.get(created.id).id == created.id
        assert [f.id for f in client.files.list()] == [created.id]
        assert client.files.delete(created.id) is True
        assert client.files.list() == []

    def test_webhook_secret(self, official: tuple[FakeReplicate, Any]) -> None:
        fake, client = official
        assert client.webhooks.default.secret().key == fake.webhook_secret

    def test_wrong_token(self, official: tuple[FakeReplicate, Any]) -> None:
        fake, _ = official
        base = fake.base_url
        assert base is not None
        stranger = replicate.Client(api_token="r8_wrong", base_url=origin(base))
        with pytest.raises(ReplicateError) as info:
            stranger.predictions.list()
        stranger._client.close()
        assert info.value.status == 401
        assert info.value.detail == "You did not pass a valid authentication token"


class TestAsync:
    async def test_async_api(self, make_fake: Callable[..., FakeReplicate]) -> None:
        fake = make_fake()
        fake.add_model("acme/upper", upper)
        fake.add_model("acme/words", words)
        async with fake.serve() as base_url:
            client = replicate.Client(api_token=TOKEN, base_url=origin(base_url))
            client.poll_interval = 0.01
            try:
                assert await client.async_run("acme/upper", input={"text": "as"}) == "AS"
                prediction = await client.models.predictions.async_create(
                    model="acme/upper", input={"text": "w"}
                )
                await prediction.async_wait()
                assert prediction.output == "W"
                got = await client.predictions.async_get(prediction.id)
                assert got.status == "succeeded"
                page = await client.predictions.async_list()
                assert {p.id for p in page.results} == {p["id"] for p in fake.predictions}
                stream = await client.async_stream("acme/words", input={"prompt": "x y"})
                assert "".join([str(e) async for e in stream]) == "x y "
                secret = await client.webhooks.default.async_secret()
                assert secret.key == fake.webhook_secret
            finally:
                await client._async_client.aclose()
