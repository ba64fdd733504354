"""Fixtures for service tests: a fake Replicate with a few models, served on the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aioresponses import aioresponses

import areplicate
from areplicate.testing import FakeReplicate, log

from ._held import Held
from ._mockapi import client as mock_client
from ._mockapi import mock_api


class Gate:
    """Lets a test hold a model mid-run and know when it has started (no sleeps)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def fake(gate: Gate) -> FakeReplicate:
    fake = FakeReplicate()

    def echo(text: str = "", n: int = 0) -> dict[str, object]:
        return {"text": text, "n": n}

    def fail(text: str = "") -> str:
        raise ValueError(f"cannot handle {text!r}")

    async def gated(text: str = "") -> str:
        gate.runs += 1
        gate.started.set()
        await gate.release.wait()
        return text.upper()

    async def words(text: str = "") -> object:
        for word in text.split():
            log(f"emitting {word}")
            yield word + " "

    fake.add_model("acme/echo", echo)
    fake.add_model("acme/fail", fail)
    fake.add_model("acme/gated", gated)
    fake.add_model("acme/words", words)
    fake.add_model("acme/community", echo, official=False)
    fake.add_model("acme/late", echo, boot_delay=30.0)
    return fake


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """aioresponses answering on ``_mockapi.BASE`` (anything unregistered is refused)."""
    with mock_api() as m:
        yield m


@pytest.fixture
async def api() -> AsyncIterator[areplicate.Client]:
    """A Client on the mocked base URL, pacing off."""
    async with mock_client() as c:
        yield c


@pytest.fixture
def held() -> Held:
    """A model that runs until the test releases it (``held.release.set()``)."""
    return Held()
