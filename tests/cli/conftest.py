"""Fixtures for the command-line tests.

The CLI runs in a subprocess (``python -m areplicate …``) against one fake Replicate server served
from a thread of the test process, so the fake's counters outlive a CLI that crashes or is killed.
Besides the demo models the fake has ``test/gated``: ``{"i": n}`` finishes at once for ``n`` below
the gate's threshold and waits for ``gate.open()`` otherwise, so a test can hold a batch part-way
without timing anything. Its ``tag`` input is ignored: tests use it to keep their inputs apart
(a batch's lookup of lost creates matches by input, and the fake is shared).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest

from areplicate._cli import batch as batch_module
from areplicate.testing import FakeReplicate, add_demo_models

CREATE_KEY = "POST /v1/models/{owner}/{name}/predictions"
CANCEL_KEY = "POST /v1/predictions/{id}/cancel"
RUN_TIMEOUT = 60


class Gate:
    """Holds ``test/gated`` predictions with ``i >= threshold`` until opened (from any thread)."""

    def __init__(self) -> None:
        self.threshold = 10**9
        self._lock = threading.Condition()
        self._opened = True
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def wait(self) -> None:
        """On the fake's loop: return once the gate is open."""
        event = asyncio.Event()
        with self._lock:
            if self._opened:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
            self._lock.notify_all()
        await event.wait()

    def wait_held(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` predictions are held at the gate."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._waiters) >= count, timeout):
                raise AssertionError(f"fewer than {count} predictions reached the gate")

    def open(self) -> None:
        """Let every held prediction finish."""
        with self._lock:
            self._opened = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def reset(self, threshold: int) -> None:
        """Close the gate for inputs from ``threshold`` on."""
        with self._lock:
            self._opened = False
            self.threshold = threshold


@attrs.define
class Fake:
    """The shared fake: its base URL, counters and gate."""

    server: FakeReplicate
    url: str
    gate: Gate

    def creates(self) -> int:
        """Prediction creates the fake has answered since the test began."""
        return self.server.counts[CREATE_KEY]


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[Fake]:
    fake = FakeReplicate(record_requests=False)
    add_demo_models(fake)
    gate = Gate()

    async def gated(i: int, tag: str = "") -> int:
        if i >= gate.threshold:
            await gate.wait()
        return i

    fake.add_model("test/gated", gated)
    with fake.serve_in_thread() as url:
        yield Fake(fake, url, gate)
        gate.open()
    assert not fake.server_errors, fake.server_errors


@pytest.fixture
def fake(_fake_server: Fake) -> Iterator[Fake]:
    """The shared fake server, with its counters reset and its gate open at the end of the test."""
    _fake_server.server.counts.clear()
    yield _fake_server
    _fake_server.gate.open()


def cli_env(fake: Fake | None, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: pointed at ``fake`` (or with no token at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLICATE_", "AREPLICATE_"))}
    env["COLUMNS"] = "200"
    env["AREPLICATE_NO_PACING"] = "1"  # the fake is not Replicate's account: no pacing needed
    if fake is not None:
        env["REPLICATE_API_TOKEN"] = "r8_cli_test_token"
        env["REPLICATE_BASE_URL"] = fake.url
    env.update(extra)
    return env


CRASHING = Path(__file__).with_name("crashing_batch.py")


def run_cli(
    args: Sequence[str],
    *,
    fake: Fake | None,
    cwd: Path,
    timeout: float = RUN_TIMEOUT,
    crash_at: tuple[str, int] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m areplicate ARGS`` to completion; ``crash_at=("intent", 100)`` runs it with
    a checkpoint that kills the process at that moment (see crashing_batch.py)."""
    command = [sys.executable, "-m", "areplicate"]
    if crash_at is not None:
        command = [sys.executable, str(CRASHING), crash_at[0], str(crash_at[1])]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=cli_env(fake, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(args: Sequence[str], *, fake: Fake, cwd: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``python -m areplicate ARGS``; its progress lines arrive on ``stderr``."""
    return subprocess.Popen(
        [sys.executable, "-m", "areplicate", *args],
        cwd=cwd,
        env=cli_env(fake, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def settle_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Second lookups after half a second instead of ten: the fake lists a prediction the moment it
    exists, so how long the batch waits for lost creates to show up changes only the test's length."""
    monkeypatch.setattr(batch_module, "_SETTLE", 0.5, raising=False)
