"""A fake model that runs until the test releases it, for clean-up tests that need predictions
still running (tests/services/test_cleanup*.py use it), and those tests' shared helpers."""

from __future__ import annotations

import asyncio

import anyio

import areplicate
from areplicate.testing import FakeReplicate


class Held:
    """A model that runs until ``release`` is set; counts the predictions that started."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.changed = asyncio.Event()

    async def __call__(self, prompt: str = "") -> str:
        self.started += 1
        self.changed.set()
        await self.release.wait()
        return prompt

    async def until_started(self, n: int) -> None:
        """Return once ``n`` predictions have started (10 s at most)."""
        with anyio.fail_after(10):
            while self.started < n:
                self.changed.clear()
                await self.changed.wait()


def status(fake: FakeReplicate, pid: str) -> str:
    """The fake's status of prediction ``pid``."""
    return str(fake.prediction(pid)["status"])


async def settle_cleanup(client: areplicate.Client) -> None:
    """Let the client's background clean-up (if any was started) run to its end (30 s at most)."""
    with anyio.fail_after(30):
        while pending := set(client._session._cleanup):
            await asyncio.wait(pending)
