"""Many processes, one account: benchmarks/shared_budget.py at 10x Replicate's rates, four worker
processes sharing one Redis budget against one fake (100 predictions each, to keep the suite
fast on two shared cores: each process pacing alone gets a quarter of them 429ed; the benchmark
runs 4 x 500 at the real rates)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._redis import RedisServer

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "shared_budget.py"


def run(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_four_processes_share_one_budget(redis_server: RedisServer) -> None:
    """4 x 100 predictions: 0 errors, 0 duplicates, under 1 % of requests 429, and never faster
    than the account's limits allow. How close to that pace it gets is a speed figure, measured by
    benchmarks/shared_budget.py at the real rates, not asserted here on a shared machine."""
    redis_server.flush()
    result = run("--scale", "10", "--per-process", "100", "--redis", redis_server.url)
    assert result["errors"] == 0, result["first_errors"]
    assert result["outputs_ok"]
    assert result["duplicates"] == 0
    assert result["predictions"] == 400
    throttled, requests = result["throttled"], result["requests"]
    assert isinstance(throttled, int)
    assert isinstance(requests, int)
    assert throttled < 0.01 * requests, result
    wall, ideal = result["wall_s"], result["ideal_s"]
    assert isinstance(wall, float)
    assert isinstance(ideal, float)
    assert wall >= 0.95 * ideal, result  # never faster than the account allows
