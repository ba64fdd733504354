"""The first wave's spellings still work: ``Client(timeout=)``, ``with_options(timeout=)`` and
``create(..., wait=)`` mean ``request_timeout=`` and ``hold=``."""

from __future__ import annotations

import pytest

import areplicate
from areplicate.testing import FakeReplicate


async def test_timeout_is_the_short_spelling_of_request_timeout() -> None:
    async with areplicate.Client("r8_test", base_url="http://127.0.0.1:9/v1", timeout=7) as client:
        assert client.config.request_timeout == 7
        assert client.with_options(timeout=3).config.request_timeout == 3
    with pytest.raises(TypeError, match="not both"):
        areplicate.Client("r8_test", request_timeout=5, timeout=7)


async def test_create_wait_is_hold() -> None:
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda text="": text)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_test", base_url=url, rate_limits=None) as client,
    ):
        prediction = await client.predictions.create("acme/echo", {"text": "hi"}, wait=True)
        assert prediction.status == areplicate.Status.SUCCEEDED
        [request] = [r for r in fake.requests if r.method == "POST"]
        assert request.headers.get("Prefer") == "wait=60"
        with pytest.raises(TypeError, match="not both"):
            await client.predictions.create("acme/echo", {}, hold=5, wait=True)
