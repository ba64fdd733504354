"""What each prediction in flight holds: no span that records nothing (benchmarks/memory.py
measures the bytes; these pin the mechanisms)."""

from __future__ import annotations

import subprocess
import sys

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
