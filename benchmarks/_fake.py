"""The fake server every benchmark measures against: ``python -m areplicate.testing`` in its own
process, so its CPU is never counted as the client's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class FakeServer:
    """Start the fake on a free port with extra command-line ``args``; ``url`` is its base URL."""

    def __init__(self, args: Sequence[str] = (), cwd: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "areplicate.testing", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=cwd)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("Fake Replicate API at "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split(" at ", 1)[1].strip()

    def stats(self) -> dict[str, Any]:
        """The fake's request and prediction counters."""
        with urllib.request.urlopen(f"{self.url}/_fake/stats") as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def reset(self) -> None:
        """Zero the counters (after a warm-up)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/_fake/stats", method="DELETE"))

    def release(self) -> None:
        """Signal the fake's process (memory.py's gated model finishes on SIGUSR1)."""
        self.proc.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
