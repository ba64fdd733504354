"""Many processes, one account: N client processes against one fake with Replicate's rate limits.

    python benchmarks/shared_budget.py                  # 4 processes x 500, real rates (~3.5 min)
    python benchmarks/shared_budget.py --no-shared      # the same, each process pacing alone
    python benchmarks/shared_budget.py --scale 20       # rates 20x (seconds, not minutes)
    python benchmarks/shared_budget.py --account 120/10 --processes 1 --per-process 600
                                                        # a 120-creates-a-minute account

The fake (per-token limits: 600 creates a minute, burst 100, 3000 other requests, burst 500, unless
``--account`` says otherwise) runs in this process; a ``redis-server`` is started on a free
loopback port unless ``--redis URL`` names one. Each worker is a fresh subprocess of this script
running ``gather_predictions`` with ``RateLimits(shared=URL)`` (the whole account's limits, not a
share). Workers start together (after their imports); "ideal" is what the fake's limits allow for
the creates: ``(creates - burst) / rate``; "wall" runs from the start signal to the last prediction
created (the model is instant), "exit" until every worker has exited. ``--json``: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

TOKEN = "r8_shared_budget_benchmark"
MODEL = "acme/quick"


async def _worker(args: argparse.Namespace) -> None:
    import areplicate

    scale = args.scale
    limits = areplicate.RateLimits(
        creates_per_minute=600 * scale,
        requests_per_minute=3000 * scale,
        burst=5.0 / scale,  # the same 50 creates at any scale
        shared=args.redis,
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    inputs = [{"n": args.offset + i} for i in range(args.per_process)]
    async with areplicate.Client(
        api_token=TOKEN, base_url=args.worker, rate_limits=limits, max_connections=args.concurrency
    ) as client:
        results = await areplicate.gather_predictions(
            client, MODEL, inputs, concurrency=args.concurrency, return_exceptions=True
        )
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    ids = [r.id for r in results if not isinstance(r, BaseException)]
    outputs_ok = all(
        r.output == item["n"]
        for r, item in zip(results, inputs, strict=True)
        if not isinstance(r, BaseException)
    )
    print(json.dumps({"errors": errors, "ids": ids, "outputs_ok": outputs_ok}), flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            "redis-server is not installed (apt-get install redis-server), or pass --redis URL"
        )
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="areplicate-bench-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*argv, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0", workdir
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


async def _coordinate(args: argparse.Namespace, redis_url: str | None) -> dict[str, Any]:
    from areplicate.testing import FakeRateLimits, FakeReplicate

    scale = args.scale
    base = FakeRateLimits.parse(args.account) if args.account else FakeRateLimits.real()
    limits = FakeRateLimits(
        creates_per_minute=base.creates_per_minute * scale,
        creates_burst=base.creates_burst,
        others_per_minute=base.others_per_minute * scale,
        others_burst=base.others_burst,
    )
    fake = FakeReplicate(rate_limits=limits)

    async def quick(n: int = 0) -> int:
        return n

    fake.add_model(MODEL, quick)
    async with fake.serve() as url:
        procs = []
        for p in range(args.processes):
            argv = [
                sys.executable, __file__, "--worker", url, "--offset", str(p * args.per_process),
                "--per-process", str(args.per_process), "--scale", str(scale),
                "--concurrency", str(args.concurrency),
            ]  # fmt: skip
            if redis_url is not None:
                argv += ["--redis", redis_url]
            procs.append(
                await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"a worker failed to start: {line!r}")
        started = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        reports = []
        for proc in procs:
            out, _ = await proc.communicate()
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        wall = time.time() - started
    creates = [r for r in fake.requests if r.route.startswith("POST") and "predictions" in r.route]
    made = [r.time for r in creates if r.status == 201]
    done = max(made, default=started)
    total = len(fake.requests)
    throttled = fake.status_counts[429]
    n = args.processes * args.per_process
    rate = limits.creates_per_minute / 60.0
    ideal = max(n - limits.creates_burst, 0) / rate
    ids = [i for r in reports for i in r["ids"]]
    return {
        "shared": redis_url is not None,
        "processes": args.processes,
        "predictions": n,
        "scale": scale,
        "errors": sum(len(r["errors"]) for r in reports),
        "first_errors": [e for r in reports for e in r["errors"]][:3],
        "outputs_ok": all(r["outputs_ok"] for r in reports),
        "duplicates": len(fake.predictions) - len(set(ids)),
        "requests": total,
        "throttled": throttled,
        "throttled_pct": round(100.0 * throttled / max(total, 1), 2),
        "wall_s": round(done - started, 2) if made else round(wall, 2),
        "exit_s": round(wall, 2),
        "creates_span_s": round(max(made) - min(made), 2) if made else 0.0,
        "ideal_s": round(ideal, 2),
        "over_ideal_pct": round(100.0 * ((done - started) / ideal - 1), 1) if ideal else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one worker process)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--per-process", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=100, help="per process")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the fake's rates")
    p.add_argument("--account", default=None, help="the fake's limits, e.g. 120/10 (per minute)")
    p.add_argument("--redis", default=None, help="a Redis URL (default: start redis-server)")
    p.add_argument("--no-shared", action="store_true", help="each process paces alone")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(args))
        return 0
    redis_proc = None
    workdir = None
    redis_url = args.redis
    if not args.no_shared and redis_url is None:
        redis_proc, redis_url, workdir = _start_redis()
    try:
        result = asyncio.run(_coordinate(args, None if args.no_shared else redis_url))
    finally:
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
