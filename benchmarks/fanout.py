"""Fan-out benchmark: areplicate side by side with the official client and raw aiohttp loops.

    python benchmarks/fanout.py            # the full run (a few minutes)
    python benchmarks/fanout.py --quick    # a smoke run (seconds)

The fake server runs as a separate process (``python -m areplicate.testing``), so its CPU is not
the client's; each contender runs in a fresh subprocess of this script, so its CPU time, peak RSS
and TCP connections are its own. Request counts and 429s come from the fake's counters.

Contenders:
- ``areplicate``: ``gather_predictions(client, ref, inputs, concurrency=C)`` (defaults: Prefer:
  wait, then adaptive polling).
- ``official``: the ``replicate`` client's async API as its docs suggest, ``async_run`` under an
  ``asyncio.Semaphore`` with ``asyncio.gather``.
- ``raw-poll``: a minimal aiohttp loop sharing one session: create, then GET every 0.5 s.
- ``raw-wait``: the same with ``Prefer: wait`` on the create (and 0.5 s polls if still running).
The two raw loops are the floor: no retries, no budget, no models, no error handling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

TOKEN = "r8_benchmark_token"
CONTENDERS = ("areplicate", "official", "raw-poll", "raw-wait")
CREATE = "POST /v1/models/{owner}/{name}/predictions"
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
WARMUP = 20


# -- workers (one contender, one process) ------------------------------------------------------


def _count_connections() -> list[int]:
    """Count TCP connections this process opens (aiohttp and httpx/anyio both go through here)."""
    counter = [0]
    original = asyncio.BaseEventLoop.create_connection

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await original(self, *args, **kwargs)

    asyncio.BaseEventLoop.create_connection = counting  # type: ignore[method-assign]
    return counter


async def run_areplicate(
    url: str, model: str, inputs: list[dict[str, Any]], conc: int, limits: bool
) -> list[Any]:
    import areplicate

    rate_limits = areplicate.RateLimits() if limits else None
    async with areplicate.Client(
        TOKEN, base_url=url, rate_limits=rate_limits, max_connections=max(100, conc)
    ) as client:
        results = await areplicate.gather_predictions(
            client, model, inputs, concurrency=conc, return_exceptions=True
        )
    return [r.id if isinstance(r, areplicate.Prediction) else r for r in results]


async def run_official(
    url: str, model: str, inputs: list[dict[str, Any]], conc: int, limits: bool
) -> list[Any]:
    import replicate

    client = replicate.Client(api_token=TOKEN, base_url=url.removesuffix("/v1"))
    semaphore = asyncio.Semaphore(conc)

    async def one(item: dict[str, Any]) -> Any:
        async with semaphore:
            try:
                return await client.async_run(model, input=item)
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(i) for i in inputs))


async def _raw(
    url: str, model: str, inputs: list[dict[str, Any]], conc: int, prefer: bool
) -> list[Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    create_headers = dict(headers, Prefer="wait") if prefer else headers
    semaphore = asyncio.Semaphore(conc)
    connector = aiohttp.TCPConnector(limit=max(100, conc))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=90)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(item: dict[str, Any]) -> Any:
            async with semaphore:
                try:
                    async with session.post(
                        f"{url}/models/{model}/predictions",
                        data=json.dumps({"input": item}),
                        headers=create_headers,
                    ) as resp:
                        body = json.loads(await resp.read())
                    if resp.status >= 400:
                        return RuntimeError(f"HTTP {resp.status}")
                    while body["status"] not in TERMINAL:
                        await asyncio.sleep(0.5)
                        async with session.get(
                            f"{url}/predictions/{body['id']}", headers=headers
                        ) as resp:
                            body = json.loads(await resp.read())
                    return body["id"]
                except Exception as exc:
                    return exc

        return await asyncio.gather(*(one(i) for i in inputs))


async def run_raw_poll(
    url: str, model: str, inputs: list[dict[str, Any]], conc: int, limits: bool
) -> list[Any]:
    return await _raw(url, model, inputs, conc, prefer=False)


async def run_raw_wait(
    url: str, model: str, inputs: list[dict[str, Any]], conc: int, limits: bool
) -> list[Any]:
    return await _raw(url, model, inputs, conc, prefer=True)


RUNNERS: dict[str, Callable[..., Awaitable[list[Any]]]] = {
    "areplicate": run_areplicate,
    "official": run_official,
    "raw-poll": run_raw_poll,
    "raw-wait": run_raw_wait,
}


async def memory_probe(url: str, n: int, seconds: float) -> dict[str, Any]:
    """RSS per in-flight prediction with ``n`` predictions in flight at once (polling, no wait)."""
    import areplicate

    def rss() -> int:
        with Path("/proc/self/statm").open() as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    inputs = [{"seconds": seconds} for _ in range(n)]
    poll = areplicate.PollSchedule(first=seconds / 2, ratio=0.0, cap=seconds / 2)
    async with areplicate.Client(
        TOKEN, base_url=url, rate_limits=None, max_connections=100, poll=poll
    ) as client:
        # Import and warm everything first so the baseline holds the code, not the predictions.
        await areplicate.gather_predictions(client, "demo/sleep", [{"seconds": 0}] * 10)
        baseline = rss()
        peak = baseline
        fan = areplicate.as_completed(client, "demo/sleep", inputs, concurrency=n, hold=False)
        done = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss())
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        max_in_flight = 0
        async with fan:
            async for item in fan:
                max_in_flight = max(max_in_flight, fan.in_flight + 1)
                done += item.prediction is not None
        sampler.cancel()
    return {
        "in_flight": n,
        "ok": done,
        "baseline_mb": baseline / 1e6,
        "peak_mb": peak / 1e6,
        "kb_per_prediction": (peak - baseline) / n / 1024,
    }


def worker(args: argparse.Namespace) -> None:
    connections = _count_connections()
    # Import up front: start-up cost is not per-prediction cost.
    import aiohttp  # noqa: F401
    import replicate  # noqa: F401

    import areplicate  # noqa: F401

    if args.worker == "memory":
        result = asyncio.run(memory_probe(args.url, args.n, args.seconds))
        print(json.dumps(result))
        return
    inputs = [
        {"seconds": args.seconds, "i": i} if args.seconds else {"i": i} for i in range(args.n)
    ]
    model = "demo/sleep" if args.seconds else "demo/echo"
    # An unmeasured warm-up for every contender (first-use compilation, lazy imports), then the
    # fake's counters are reset so requests and predictions count only the measured run.
    warm = [{"i": -i} for i in range(1, WARMUP + 1)]
    asyncio.run(RUNNERS[args.worker](args.url, "demo/echo", warm, args.concurrency, False))
    urllib.request.urlopen(urllib.request.Request(f"{args.url}/_fake/stats", method="DELETE"))
    connections[0] = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    results = asyncio.run(
        RUNNERS[args.worker](args.url, model, inputs, args.concurrency, args.limits)
    )
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "errors": len(errors),
                "first_error": repr(errors[0])[:200] if errors else None,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "connections": connections[0],
            }
        )
    )


# -- the driver --------------------------------------------------------------------------------


class FakeServer:
    """``python -m areplicate.testing`` in its own process."""

    def __init__(self, rate_limits: bool) -> None:
        cmd = [sys.executable, "-m", "areplicate.testing", "--port", "0"]
        if rate_limits:
            cmd += ["--rate-limits", "real"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("Fake Replicate API at "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split(" at ", 1)[1].strip()

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_fake/stats") as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_worker(
    name: str, url: str, n: int, conc: int, seconds: float, limits: bool
) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--worker", name, "--url", url, "--n", str(n),
        "--concurrency", str(conc), "--seconds", str(seconds),
    ]  # fmt: skip
    if limits:
        cmd.append("--limits")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def workload(
    title: str,
    n: int,
    conc: int,
    seconds: float,
    contenders: tuple[str, ...],
    *,
    limits: bool,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    server = FakeServer(rate_limits=limits)
    rows = []
    try:
        for name in contenders:
            # Best of `repeat` runs by CPU: the least noisy estimate of what the client costs.
            runs = []
            for _ in range(repeat):
                before = server.stats()["predictions"] + WARMUP
                run = run_worker(name, server.url, n, conc, seconds, limits)
                runs.append((run, server.stats(), before))
            row, stats, before = min(runs, key=lambda r: r[0]["cpu"])
            row["cpu_runs"] = [round(1000 * r[0]["cpu"] / n, 2) for r in runs]
            requests = sum(stats["counts"].values())
            created = stats["predictions"] - before
            row.update(
                name=name,
                n=n,
                requests_per_prediction=requests / n,
                throttled=stats["statuses"].get("429", 0),
                duplicates=max(0, created - n),
                created=created,
                pred_per_s=n / row["wall"],
                cpu_ms=1000 * row["cpu"] / n,
            )
            rows.append(row)
    finally:
        server.close()
    print_table(title, rows)
    return rows


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    floor = min((r["cpu_ms"] for r in rows if r["name"].startswith("raw")), default=None)
    official = next((r["cpu_ms"] for r in rows if r["name"] == "official"), None)
    print(f"\n### {title}\n")
    print(
        "| client | wall s | pred/s | CPU ms/pred | req/pred | 429s | errors | dupes | peak RSS MB "
        "| TCP conns | CPU ×floor | official ÷ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vs_floor = f"{r['cpu_ms'] / floor:.2f}" if floor else "–"
        vs_official = f"{official / r['cpu_ms']:.1f}" if official else "–"
        print(
            f"| {r['name']} | {r['wall']:.1f} | {r['pred_per_s']:.0f} | {r['cpu_ms']:.2f} | "
            f"{r['requests_per_prediction']:.2f} | {r['throttled']} | {r['errors']} | "
            f"{r['duplicates']} | {r['rss_mb']:.0f} | {r['connections']} | {vs_floor} | "
            f"{vs_official} |"
        )
        if len(r.get("cpu_runs", ())) > 1:
            print(f"|  {r['name']} CPU ms/pred per run: {r['cpu_runs']} |")
        if r["first_error"]:
            print(f"|  first error: {r['first_error']} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small numbers")
    parser.add_argument("--only", default="abcd", help="workloads to run, e.g. 'ab' (default all)")
    parser.add_argument("--worker", choices=(*CONTENDERS, "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--limits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    q = args.quick
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {os.uname().machine}")
    if "a" in args.only:
        workload(
            "(a) instant model: 1000 predictions at concurrency 100" if not q else "(a) quick",
            50 if q else 1000, 10 if q else 100, 0.0, CONTENDERS, limits=False,
            repeat=1 if q else 3,
        )  # fmt: skip
    if "b" in args.only:
        workload(
            "(b) 2 s model: 500 predictions at concurrency 100" if not q else "(b) quick",
            20 if q else 500, 10 if q else 100, 0.5 if q else 2.0, CONTENDERS, limits=False,
            repeat=1 if q else 3,
        )  # fmt: skip
    if "c" in args.only:
        workload(
            "(c) real rate limits: 2000 predictions at concurrency 500" if not q else "(c) quick",
            150 if q else 2000, 50 if q else 500, 0.0, ("areplicate",), limits=True,
        )  # fmt: skip
    if "d" in args.only:
        server = FakeServer(rate_limits=False)
        try:
            n = 200 if q else 5000
            cmd = [
                sys.executable, __file__, "--worker", "memory", "--url", server.url,
                "--n", str(n), "--seconds", "3" if q else "10",
            ]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            mem = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            server.close()
        print(f"\n### (d) memory with {mem['in_flight']} predictions in flight\n")
        print(
            f"baseline {mem['baseline_mb']:.1f} MB, peak {mem['peak_mb']:.1f} MB: "
            f"{mem['kb_per_prediction']:.1f} KB per in-flight prediction ({mem['ok']} finished)"
        )


if __name__ == "__main__":
    main()
