"""What each prediction in flight holds: no span that records nothing (benchmarks/memory.py
measures the bytes; these pin the mechanisms)."""

from __future__ import annotations

import asyncio
import linecache
import subprocess
import sys
import tracemalloc
from typing import Any

import anyio

from areplicate._core.retry import PollSchedule
from areplicate._core.status import Status
from areplicate._models import Prediction
from areplicate._services import _waiting

# Run in a fresh interpreter: the process-wide tracer provider can be set only once, and the
# tracing tests of this suite set one.
_NO_PROVIDER = """
import asyncio
import areplicate
from areplicate import _otel
from areplicate.testing import FakeReplicate

class Tracer:
    spans = 0
    def start_as_current_span(self, *args, **kwargs):
        Tracer.spans += 1
        raise AssertionError("a span was opened with no tracer provider set")

assert _otel.tracer() is not None  # opentelemetry-api is installed
_otel._tracer = Tracer()

async def main():
    fake = FakeReplicate()
    fake.add_model("o/m", lambda: "ok")
    async with fake.serve() as url, areplicate.Client(
        "r8_x", base_url=url, rate_limits=None
    ) as client:
        assert await client.run("o/m", {}) == "ok"
        async for item in areplicate.as_completed(client, "o/m", [{}, {}]):
            assert item.ok

asyncio.run(main())
print(Tracer.spans)
"""


def test_no_span_is_opened_while_no_tracer_provider_is_set() -> None:
    # A non-recording span records nothing yet is held for the prediction's whole life.
    out = subprocess.run(
        [sys.executable, "-c", _NO_PROVIDER],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0"


class _Hook:
    """A webhook-like hook that never answers: each wait stays asleep in it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    def result(self, pid: str, timeout: float) -> asyncio.Future[Any]:
        return self.loop.create_future()


class _Service:
    async def get(self, pid: str) -> Prediction:
        raise AssertionError("no poll is due")

    async def _cancel_shielded(self, pid: str) -> None:
        pass


async def test_a_wait_without_a_timeout_holds_nothing_for_its_deadline() -> None:
    # A ``with`` block holds its manager's bound ``__exit__`` while it runs: ~64 bytes a wait.
    hook, service = _Hook(), _Service()
    current = Prediction(id="p", status=Status.PROCESSING)
    waits = [
        _waiting.wait_until_done(
            service,
            Prediction,
            "p",
            current,
            schedule=PollSchedule(),
            timeout=None,
            cancel_on_exit=False,
            delivered=hook,
        )
        for _ in range(200)
    ]
    tracemalloc.start()
    try:
        for wait in waits:
            wait.send(None)  # runs to the hook's sleep
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        for wait in waits:
            wait.close()
    held = snapshot.filter_traces([tracemalloc.Filter(True, _waiting.__file__)])
    by_line = {s.traceback[0].lineno: s.count for s in held.statistics("lineno")}
    lines = linecache.getlines(_waiting.__file__)
    with_line = next(n for n, line in enumerate(lines, 1) if "with _NO_DEADLINE" in line)
    assert by_line.get(with_line, 0) < 10, by_line


async def test_create_and_wait_lets_go_of_the_create_answer_while_it_waits() -> None:
    # The wait keeps the newest state it has seen; holding the create's answer too cost about
    # 1 KB per prediction while thousands wait.
    import gc
    import weakref

    import areplicate
    from areplicate._options import RunOptions

    answers = [Prediction(id="p", status=Status.PROCESSING)]
    first = weakref.ref(answers[0])
    waiting, release = asyncio.Event(), asyncio.Event()

    async def created() -> Prediction:
        return answers.pop()

    async def wait() -> Prediction:
        waiting.set()
        await release.wait()
        return Prediction(id="p", status=Status.SUCCEEDED)

    async with areplicate.Client("r8_x", base_url="http://127.0.0.1:9/v1") as client:
        service = client.predictions
        service._create = lambda *_: created()  # type: ignore[method-assign]
        service._wait = lambda *_, **__: wait()  # type: ignore[method-assign]
        with anyio.fail_after(5):
            task = asyncio.create_task(service._create_and_wait("o/m", {}, RunOptions()))
            await waiting.wait()
            gc.collect()
            assert first() is None, "the create's answer is still held during the wait"
            release.set()
            assert (await task).status is Status.SUCCEEDED
