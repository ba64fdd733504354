"""Fan-out benchmark: areplicate side by side with the official client and raw aiohttp loops.

    python benchmarks/fanout.py            # the full run (about ten minutes)
    python benchmarks/fanout.py --quick    # a smoke run (seconds)
    python benchmarks/fanout.py --only ab  # some workloads: a instant, b 2 s, c paced, d memory,
                                           # e import time, f list-sweep vs per-GET polls

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
- ``raw-wait-paced``: ``raw-wait`` behind a token bucket at ``RateLimits()``'s ceilings (10
  creates and 50 other requests a second, 5 s of burst): the floor for the paced workload.
The raw loops are the floor: no retries, no learning, no models, no error handling.
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

from _fake import FakeServer  # benchmarks/ is the script's own directory, first on sys.path

TOKEN = "r8_benchmark_token"
CONTENDERS = ("areplicate", "official", "raw-poll", "raw-wait")
PACED = ("areplicate", "raw-wait-paced")
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


class _Bucket:
    """The paced floor's token bucket (a GCRA): ``rate`` a second, ``burst`` seconds of slack.

    Each caller takes its slot at once and sleeps until it, so there is no lock and no queue:
    the least a client can do to stay under a rate limit.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.interval = 1.0 / rate
        self.tolerance = burst
        self.tat = 0.0

    async def take(self) -> None:
        now = asyncio.get_running_loop().time()
        self.tat = max(self.tat, now) + self.interval
        delay = self.tat - self.tolerance - now
        if delay > 0:
            await asyncio.sleep(delay)


async def _raw(
    url: str,
    model: str,
    inputs: list[dict[str, Any]],
    conc: int,
    *,
    prefer: bool,
    paced: bool = False,
    poll: float = 0.5,
) -> list[Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    create_headers = dict(headers, Prefer="wait") if prefer else headers
    semaphore = asyncio.Semaphore(conc)
    # RateLimits()'s defaults: 600 creates and 3000 other requests a minute, 5 s of burst.
    creates, others = _Bucket(600 / 60, 5.0), _Bucket(3000 / 60, 5.0)
    connector = aiohttp.TCPConnector(limit=max(100, conc))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=90)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(item: dict[str, Any]) -> Any:
            async with semaphore:
                try:
                    if paced:
                        await creates.take()
                    async with session.post(
                        f"{url}/models/{model}/predictions",
                        data=json.dumps({"input": item}),
                        headers=create_headers,
                    ) as resp:
                        body = json.loads(await resp.read())
                    if resp.status >= 400:
                        return RuntimeError(f"HTTP {resp.status}")
                    while body["status"] not in TERMINAL:
                        await asyncio.sleep(poll)
                        if paced:
                            await others.take()
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


async def run_raw_wait_paced(
    url: str, model: str, inputs: list[dict[str, Any]], conc: int, limits: bool
) -> list[Any]:
    return await _raw(url, model, inputs, conc, prefer=True, paced=limits)


RUNNERS: dict[str, Callable[..., Awaitable[list[Any]]]] = {
    "areplicate": run_areplicate,
    "official": run_official,
    "raw-poll": run_raw_poll,
    "raw-wait": run_raw_wait,
    "raw-wait-paced": run_raw_wait_paced,
}


async def memory_probe(url: str, n: int, seconds: float, who: str, trace: bool) -> dict[str, Any]:
    """Client memory per in-flight prediction with ``n`` predictions of a ``seconds`` model in flight
    at once (create without ``Prefer: wait``, then polls every ``seconds / 2``).

    ``who`` is ``areplicate`` (``as_completed`` at ``concurrency=n``) or ``raw`` (the raw-poll loop
    at the same concurrency, the floor). ``trace``: tracemalloc's peak of Python allocations since
    the warm-up instead of the process's RSS (sampled every 0.2 s); one or the other per process,
    since tracemalloc's own bookkeeping would swell the RSS.
    """
    import tracemalloc

    import areplicate

    def rss() -> int:
        with Path("/proc/self/statm").open() as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    inputs = [{"seconds": seconds, "i": i} for i in range(n)]
    poll = areplicate.PollSchedule(first=seconds / 2, ratio=0.0, cap=seconds / 2)
    done = 0
    async with areplicate.Client(
        TOKEN, base_url=url, rate_limits=None, max_connections=100, poll=poll
    ) as client:
        # Import and warm everything first so the baseline holds the code, not the predictions.
        await areplicate.gather_predictions(client, "demo/sleep", [{"seconds": 0}] * 10)
        await _raw(url, "demo/echo", [{"i": -1}] * 10, 10, prefer=False)
        if trace:
            tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0] if trace else rss()
        peak = baseline

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, tracemalloc.get_traced_memory()[1] if trace else rss())
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        if who == "raw":
            results = await _raw(url, "demo/sleep", inputs, n, prefer=False, poll=seconds / 2)
            done = sum(not isinstance(r, BaseException) for r in results)
        else:
            fan = areplicate.as_completed(client, "demo/sleep", inputs, concurrency=n, hold=False)
            async with fan:
                async for item in fan:
                    done += item.prediction is not None
        sampler.cancel()
        peak = max(peak, tracemalloc.get_traced_memory()[1] if trace else rss())
    return {
        "who": who,
        "how": "tracemalloc" if trace else "RSS",
        "in_flight": n,
        "ok": done,
        "baseline_mb": baseline / 1e6,
        "peak_mb": peak / 1e6,
        "kb_per_prediction": (peak - baseline) / n / 1024,
    }


IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)


def import_time(module: str, runs: int) -> list[float]:
    """Seconds to ``import module`` in fresh interpreters, one number per run."""
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_SNIPPET.format(module=module)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        times.append(float(out.stdout.strip()))
    return times


def worker(args: argparse.Namespace) -> None:
    connections = _count_connections()
    # Import up front: start-up cost is not per-prediction cost.
    import aiohttp  # noqa: F401
    import replicate  # noqa: F401

    import areplicate  # noqa: F401

    if args.worker in ("memory", "memory-raw"):
        who = "raw" if args.worker == "memory-raw" else "areplicate"
        result = asyncio.run(memory_probe(args.url, args.n, args.seconds, who, args.trace))
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
    server = FakeServer(["--rate-limits", "real"] if limits else [])
    runs: dict[str, list[tuple[dict[str, Any], dict[str, Any], int]]] = {c: [] for c in contenders}
    try:
        # Rounds of one run per contender, so a busy spell on the machine hits them all alike.
        for _ in range(repeat):
            for name in contenders:
                before = server.stats()["predictions"] + WARMUP
                run = run_worker(name, server.url, n, conc, seconds, limits)
                runs[name].append((run, server.stats(), before))
    finally:
        server.close()
    rows = []
    for name in contenders:
        # Best of `repeat` runs by CPU: the least noisy estimate of what the client costs.
        row, stats, before = min(runs[name], key=lambda r: r[0]["cpu"])
        row["cpu_runs"] = [round(1000 * r[0]["cpu"] / n, 3) for r in runs[name]]
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
    print_table(title, rows)
    return rows


def vs_floor(rows: list[dict[str, Any]], name: str = "areplicate") -> float:
    """``name``'s CPU per prediction over the best raw loop's, from the same run."""
    floor = min(r["cpu_ms"] for r in rows if r["name"].startswith("raw"))
    return next(r["cpu_ms"] for r in rows if r["name"] == name) / floor


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    # The floor: the cheapest raw loop of this run (raw-wait-paced alone in the paced workload).
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


def memory(n: int, seconds: float) -> dict[str, dict[str, Any]]:
    """(d): areplicate and the raw-poll floor, each measured by RSS and by tracemalloc."""
    server = FakeServer()
    results = {}
    try:
        for worker_name in ("memory", "memory-raw"):
            for trace in (False, True):
                cmd = [
                    sys.executable, __file__, "--worker", worker_name, "--url", server.url,
                    "--n", str(n), "--seconds", str(seconds),
                ]  # fmt: skip
                if trace:
                    cmd.append("--trace")
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise RuntimeError(f"{worker_name} worker failed:\n{out.stderr[-2000:]}")
                mem = json.loads(out.stdout.strip().splitlines()[-1])
                results[f"{mem['who']} {mem['how']}"] = mem
    finally:
        server.close()
    print(f"\n### (d) client memory with {n} predictions in flight ({seconds:g} s model)\n")
    print(
        "| client | measure | baseline MB | peak MB | KB per in-flight prediction | finished | ×floor |"
    )
    print("|---|---|---|---|---|---|---|")
    for mem in results.values():
        floor = results[f"raw {mem['how']}"]["kb_per_prediction"]
        print(
            f"| {mem['who']} | {mem['how']} | {mem['baseline_mb']:.1f} | {mem['peak_mb']:.1f} | "
            f"{mem['kb_per_prediction']:.1f} | {mem['ok']} | {mem['kb_per_prediction'] / floor:.2f} |"
        )
    sys.stdout.flush()
    return results


def imports(runs: int) -> tuple[float, float]:
    """(e): best-of-``runs`` import time of areplicate against aiohttp alone, fresh interpreters."""
    # Interleaved, so a busy spell does not land on one of the two only.
    times: dict[str, list[float]] = {"aiohttp": [], "areplicate": []}
    for _ in range(runs):
        for module, spent in times.items():
            spent.extend(import_time(module, 1))
    best = {module: min(spent) for module, spent in times.items()}
    print(f"\n### (e) import time, best of {runs} fresh interpreters\n")
    print("| import | best ms | every run, ms | ×aiohttp |")
    print("|---|---|---|---|")
    for module, spent in times.items():
        every = ", ".join(f"{1000 * t:.0f}" for t in spent)
        ratio = best[module] / best["aiohttp"]
        print(f"| {module} | {1000 * best[module]:.0f} | {every} | {ratio:.2f} |")
    sys.stdout.flush()
    return best["areplicate"], best["aiohttp"]


def polls(quick: bool) -> str | None:
    """(f): list-sweep against per-GET polls, by ``benchmarks/polls.py`` when it is there."""
    script = Path(__file__).with_name("polls.py")
    print("\n### (f) list-sweep vs per-GET polls\n")
    if not script.exists():
        print("(benchmarks/polls.py is not there: skipped)")
        return None
    cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(out.stdout, end="")
    if out.returncode != 0:
        print(f"polls.py failed ({out.returncode}):\n{out.stderr[-2000:]}")
    sys.stdout.flush()
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small numbers")
    parser.add_argument(
        "--only", default="abcdef", help="workloads to run, e.g. 'ab' (default all)"
    )
    parser.add_argument("--repeat", type=int, help="runs per contender (default 3, quick 1)")
    parser.add_argument(
        "--contenders", help="comma-separated subset for (a) and (b), e.g. areplicate,raw-wait"
    )
    parser.add_argument(
        "--worker", choices=(*RUNNERS, "memory", "memory-raw"), help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--limits", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    q = args.quick
    repeat = args.repeat or (1 if q else 3)
    contenders = tuple(args.contenders.split(",")) if args.contenders else CONTENDERS
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {os.uname().machine}")
    summary = []
    if "a" in args.only:
        rows = workload(
            "(a) instant model: 1000 predictions at concurrency 100" if not q else "(a) quick",
            50 if q else 1000, 10 if q else 100, 0.0, contenders, limits=False, repeat=repeat,
        )  # fmt: skip
        summary.append(("(a) instant model, CPU", vs_floor(rows), "raw-wait"))
    if "b" in args.only:
        rows = workload(
            "(b) 2 s model: 500 predictions at concurrency 100" if not q else "(b) quick",
            20 if q else 500, 10 if q else 100, 0.5 if q else 2.0, contenders, limits=False,
            repeat=repeat,
        )  # fmt: skip
        summary.append(("(b) 2 s model, CPU", vs_floor(rows), "raw-wait"))
    if "c" in args.only:
        # Replicate's real limits (the fake's): 100 creates at once, then 10 a second; both
        # clients pace at RateLimits()'s 10 a second with 5 s of burst.
        rows = workload(
            "(c) paced at the real limits: 600 predictions at concurrency 300"
            if not q else "(c) quick",
            60 if q else 600, 30 if q else 300, 0.0, PACED, limits=True,
            repeat=1 if args.repeat is None else args.repeat,  # ~100 s a run: the runs repeat it
        )  # fmt: skip
        summary.append(("(c) paced, CPU", vs_floor(rows), "raw-wait-paced"))
    if "d" in args.only:
        n, seconds = (200, 2.0) if q else (10_000, 20.0)
        mem = memory(n, seconds)
        for how in ("RSS", "tracemalloc"):
            ratio = (
                mem[f"areplicate {how}"]["kb_per_prediction"]
                / mem[f"raw {how}"]["kb_per_prediction"]
            )
            summary.append((f"(d) memory at {n} in flight, {how}", ratio, "raw-poll"))
    if "e" in args.only:
        ours, theirs = imports(2 if q else 7)
        summary.append(("(e) import time", ours / theirs, "import aiohttp"))
    if "f" in args.only:
        polls(q)
    print("\n### Against the floor measured in this run\n")
    print("| row | ×floor | floor |")
    print("|---|---|---|")
    for row, ratio, floor in summary:
        print(f"| {row} | {ratio:.2f} | {floor} |")


if __name__ == "__main__":
    main()
