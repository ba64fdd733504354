"""Polls benchmark: many running predictions checked by list-page sweeps vs one GET each.

    python benchmarks/polls.py                  # 100, 1000 and 5000 of a 60 s model, both modes
    python benchmarks/polls.py --quick          # a smoke run (100 only, seconds)
    python benchmarks/polls.py --n 1000 --model-seconds 20 --runs 3

The fake runs in its own process (``python -m areplicate.testing``) and each run in a fresh
subprocess of this script. Time is scaled by ``--scale`` (default 10) on both sides, the way
dimensions scale: the model sleeps ``60 / scale`` real seconds, the fake's rate limits are the real
ones (600 creates a minute, burst 100; 3000 other requests a minute, burst 500) times ``scale``,
and the client's budget and poll schedule are the defaults scaled alike. Requests per prediction do
not change with the scale; delays are reported in unscaled seconds (real delay times ``scale``).
Not scaled: the budget's slow start (its rate doubles every half second of real time) and
request latency, so a scaled run is slightly pessimistic for both modes.

Modes: ``sweep`` is the client as shipped; ``per-get`` is the same client with sweeps switched off
(the threshold set out of reach), so every wait polls its prediction on its own schedule.

Each prediction is created with ``hold=False`` (so the wait, not a held create, sees it finish),
through ``as_completed`` with a concurrency of N: all N are in flight as fast as the create limit
lets them start. Completion delay is the time from the fake's ``completed_at`` to the moment the
fan-out yields the prediction, on the same clock (one machine, one wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _fake import FakeServer  # benchmarks/ is the script's own directory, first on sys.path

TOKEN = "r8_benchmark_token"
MODES = ("sweep", "per-get")
CREATE = "POST /v1/models/{owner}/{name}/predictions"


# -- the worker (one run, one process) ---------------------------------------------------------


async def one_run(url: str, mode: str, n: int, seconds: float, scale: float) -> dict[str, Any]:
    import areplicate
    from areplicate._core import sweep

    if mode == "per-get":
        sweep.MIN_WAITERS = 10**9  # sweeps never start: every wait polls on its own
    default = areplicate.PollSchedule()
    limits = areplicate.RateLimits()
    client = areplicate.Client(
        TOKEN,
        base_url=url,
        rate_limits=areplicate.RateLimits(
            creates_per_minute=limits.creates_per_minute * scale,
            requests_per_minute=limits.requests_per_minute * scale,
            burst=limits.burst / scale,
        ),
        poll=areplicate.PollSchedule(
            first=default.first / scale, ratio=default.ratio, cap=default.cap / scale
        ),
        max_connections=200,
    )
    inputs = [{"seconds": seconds / scale} for _ in range(n)]
    delays: list[float] = []
    errors: list[str] = []
    peak = 0
    started = time.time()
    async with client:
        fan = areplicate.as_completed(client, "demo/sleep", inputs, concurrency=n, hold=False)
        async with fan:
            async for item in fan:
                noticed = time.time()
                peak = max(peak, fan.in_flight + 1)
                prediction = item.prediction
                if item.error is not None or prediction is None:
                    errors.append(repr(item.error)[:200])
                    continue
                done = prediction.completed_at
                if done is None:
                    errors.append(f"{prediction.id}: no completed_at")
                    continue
                delays.append((noticed - done.timestamp()) * scale)
        stats = client.stats
    sweeper = client.predictions._session.shared.get("sweeper")
    return {
        "wall": time.time() - started,
        "delays": delays,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "peak_in_flight": peak,
        "sweeps": getattr(sweeper, "sweeps", 0),
        "pages": getattr(sweeper, "pages", 0),
        "outcomes": dict(getattr(sweeper, "outcomes", {})),
        "client_429s": getattr(stats, "throttled", None),
    }


def worker(args: argparse.Namespace) -> None:
    result = asyncio.run(one_run(args.url, args.mode, args.n, args.model_seconds, args.scale))
    print(json.dumps(result))


# -- the driver --------------------------------------------------------------------------------


def run_worker(url: str, mode: str, n: int, seconds: float, scale: float) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--worker", "--url", url, "--mode", mode, "--n", str(n),
        "--model-seconds", str(seconds), "--scale", str(scale),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(server: FakeServer, mode: str, n: int, seconds: float, scale: float) -> dict[str, Any]:
    server.reset()
    run = run_worker(server.url, mode, n, seconds, scale)
    stats = server.stats()
    counts = stats["counts"]
    requests = sum(counts.values())
    creates = counts.get(CREATE, 0)
    lists = counts.get("GET /v1/predictions", 0)
    delays = run.pop("delays")
    return {
        "mode": mode,
        "n": n,
        "peak": run["peak_in_flight"],
        "polls_per_prediction": (requests - creates) / n,
        "requests_per_prediction": requests / n,
        "pages": lists,
        "p50": statistics.median(delays) if delays else float("nan"),
        "p95": quantile(delays, 0.95),
        "max": max(delays, default=float("nan")),
        "throttled": stats["statuses"].get("429", 0),
        "errors": run["errors"],
        "first_error": run["first_error"],
        "wall": run["wall"] * scale,
        "outcomes": run["outcomes"],
        "counts": counts,
    }


def print_table(title: str, rows: list[dict[str, Any]], *, verbose: bool = False) -> None:
    print(f"\n### {title}\n")
    print(
        "| N | mode | peak in flight | polls/pred | requests/pred | list pages | delay p50 s | "
        "p95 s | max s | 429s | errors | run s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']} | {r['mode']} | {r['peak']} | {r['polls_per_prediction']:.2f} | "
            f"{r['requests_per_prediction']:.2f} | {r['pages']} | {r['p50']:.2f} | "
            f"{r['p95']:.2f} | {r['max']:.2f} | {r['throttled']} | {r['errors']} | "
            f"{r['wall']:.0f} |"
        )
        if verbose:
            print(f"|  | {r['outcomes']} {r['counts']} |")
        if r["first_error"]:
            print(f"|  | first error: {r['first_error']} |")
    sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, action="append", help="predictions (repeatable)")
    p.add_argument("--model-seconds", type=float, default=60.0, help="model run time (unscaled)")
    p.add_argument("--scale", type=float, default=10.0, help="time runs this much faster")
    p.add_argument("--runs", type=int, default=1, help="runs of each row")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: sweep,per-get")
    p.add_argument("--quick", action="store_true", help="100 predictions only")
    p.add_argument("--verbose", action="store_true", help="print request counts and wait outcomes")
    args = p.parse_args()
    if args.worker:
        args.n = args.n[0]
        worker(args)
        return
    sizes = args.n or ([100] if args.quick else [100, 1000, 5000])
    modes = [m for m in args.modes.split(",") if m]
    print(
        f"{args.model_seconds:g} s model, real limits, time scaled x{args.scale:g}; "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    limits = f"{600 * args.scale:g}/100,{3000 * args.scale:g}/500"  # the real ones, scaled
    server = FakeServer(["--rate-limits", limits])
    try:
        for run in range(args.runs):
            rows = [
                measure(server, mode, n, args.model_seconds, args.scale)
                for n in sizes
                for mode in modes
            ]
            print_table(f"run {run + 1}", rows, verbose=args.verbose)
    finally:
        server.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
