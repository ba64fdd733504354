"""Memory benchmark: client memory per in-flight prediction with N predictions in flight at once.

    python benchmarks/memory.py               # 10,000 in flight, three runs
    python benchmarks/memory.py -n 2000 -r 1  # a quick one
    python benchmarks/memory.py --top 25      # also where the memory is (tracemalloc, by line)
    python benchmarks/memory.py --heap        # also where the RSS is (pymalloc, malloc)

The fake server runs in its own process (``python -m areplicate.testing``) with one extra model,
``bench/gate``, whose predictions stay ``processing`` until the benchmark releases them all at
once (SIGUSR1 to the fake), so every prediction is in flight at the moment of measuring, and no
timing decides how many. The client runs in a fresh subprocess: ``as_completed`` over N inputs at
concurrency N, with the client's defaults (a ``Prefer: wait`` hold on each create, then polls; a
connection limit of 100, so most creates wait for a connection or a poll's timer at any moment).

Two numbers per run, both divided by N:
- **tracemalloc**: the Python memory traced once all N are ``processing`` on the fake and the
  client's request count has settled, less what was traced just before the fan-out began (after a
  warm-up of 20 predictions, so imports, converters and the connection pool are in the baseline).
- **RSS**: the process's resident set at the same moment, less its RSS at the same baseline, run
  without tracemalloc (which costs memory of its own).

Beside them, the traced **peak** since the baseline: RSS follows the peak more than the moment,
since memory freed in pymalloc's pools stays resident. ``--heap`` shows, for the untraced run,
where the RSS went: pymalloc's arenas (objects up to 512 bytes: in use, free blocks in partly used
pools, wholly free pools) and malloc's heap (larger objects), and the size classes with the most
free bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

from _fake import FakeServer  # benchmarks/ is the script's own directory, first on sys.path

TOKEN = "r8_benchmark_token"
HERE = Path(__file__).resolve().parent
WARMUP = 20

# -- the fake's extra model (imported by the fake through --models memory:setup) ----------------

_release: asyncio.Event | None = None


async def gate(i: int = 0) -> int:
    """Stays running until the fake process gets SIGUSR1, then returns ``i``."""
    global _release  # noqa: PLW0603
    if _release is None:
        _release = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _release.set)
    await _release.wait()
    return i


def setup(fake: Any) -> None:
    """Register ``bench/gate`` on the fake (``--models memory:setup``)."""
    fake.add_model("bench/gate", gate, description="Runs until released.")


# -- the client worker (one fresh process per run) ---------------------------------------------


def _rss() -> int:
    with Path("/proc/self/statm").open() as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _heap() -> dict[str, int]:
    """Where the process's heap is: pymalloc's arenas (the objects of 512 bytes or less) and glibc
    malloc's (everything larger, and C libraries' own), in bytes."""
    import ctypes
    import re
    import tempfile

    heap: dict[str, int] = {}
    # sys._debugmallocstats() writes to the C stderr: read it back through a file.
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode()
    # Per size class: bytes in use and bytes free in its pools.
    for m in re.finditer(r"^\s*\d+\s+(\d+)\s+\d+\s+(\d+)\s+(\d+)\s*$", text, re.MULTILINE):
        size, used, free = (int(g) for g in m.groups())
        heap[f"{size} B used"] = used * size
        heap[f"{size} B free"] = free * size
    for key, pattern in {
        "pymalloc arenas": r"(\d+) arenas \* (\d+) bytes/arena",
        "pymalloc in use": r"# bytes in allocated blocks\s*=\s*([\d,]+)",
        "pymalloc free blocks": r"# bytes in available blocks\s*=\s*([\d,]+)",
        "pymalloc free pools": r"(\d+) unused pools \* (\d+) bytes",
    }.items():
        m = re.search(pattern, text)
        if m is not None:
            numbers = [int(g.replace(",", "")) for g in m.groups()]
            heap[key] = numbers[0] * numbers[1] if len(numbers) == 2 else numbers[0]

    class Mallinfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        ]

    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = Mallinfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):  # not glibc
        return heap
    heap["malloc heap"] = info.arena
    heap["malloc mmapped"] = info.hblkhd
    heap["malloc in use"] = info.uordblks
    heap["malloc free"] = info.fordblks
    return heap


def _fake_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_fake/stats") as resp:
        result: dict[str, Any] = json.loads(resp.read())
    return result


async def _stats(url: str) -> dict[str, Any]:
    return await asyncio.to_thread(_fake_stats, url)


async def measure(
    url: str, n: int, *, traced: bool, top: int, hold: int, paced: bool, heap: bool = False
) -> dict[str, Any]:
    """Start ``n`` predictions of ``bench/gate`` at once and measure once the fake holds them all.

    Returns without closing anything: the worker exits straight after printing, so the 10,000
    remote cancels a close would send are not part of the run (the driver releases the model).
    """
    import areplicate

    # Paced: the API's real 3000 requests a minute for polls, so with N in flight nearly every
    # prediction waits for its next poll's turn in the budget, as it would against Replicate;
    # creates get a ceiling the fake can take at once, so setting up N takes seconds, not the
    # real limit's N/600 minutes. Unpaced: polls on the default schedule as fast as the fake
    # answers, so most wait for one of the pool's connections instead.
    limits = areplicate.RateLimits(creates_per_minute=60_000, requests_per_minute=3000)
    client = areplicate.Client(TOKEN, base_url=url, rate_limits=limits if paced else None)
    # Warm up: imports, converters, the pool's connections, first-use caches.
    await areplicate.gather_predictions(client, "demo/echo", [{"text": "x"}] * WARMUP)
    gc.collect()
    if traced:
        tracemalloc.start(25 if top < 0 else 1)
    base_rss = _rss()
    base_heap = _heap() if heap else {}
    base_traced = tracemalloc.get_traced_memory()[0] if traced else 0
    if traced:
        tracemalloc.reset_peak()
    before = tracemalloc.take_snapshot() if traced and top else None
    created_before = (await _stats(url))["predictions"]

    inputs = ({"i": i} for i in range(n))
    fan = areplicate.as_completed(client, "bench/gate", inputs, concurrency=n, hold=hold or False)
    pump = asyncio.ensure_future(fan.__anext__())  # starts the feeder
    # Wait until the fake holds all N (each `processing` there, so each is in flight here), then
    # a little more for the client's own bookkeeping to settle.
    started = time.monotonic()
    while (created := (await _stats(url))["predictions"] - created_before) < n:
        if time.monotonic() > started + 900:
            raise RuntimeError("the fake never held all the predictions")
        print(f"{time.monotonic() - started:6.1f} s: {created} created", file=sys.stderr)
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    gc.collect()
    rss = _rss()
    now_heap = _heap() if heap else {}
    now_traced, peak_traced = tracemalloc.get_traced_memory() if traced else (0, 0)
    after = tracemalloc.take_snapshot() if before is not None else None
    result: dict[str, Any] = {
        "n": n,
        "in_flight": fan.in_flight,
        "done": pump.done(),
        "rss_kb": (rss - base_rss) / n / 1024,
        "traced_kb": (now_traced - base_traced) / n / 1024 if traced else None,
        "peak_kb": (peak_traced - base_traced) / n / 1024 if traced else None,
    }
    if before is not None and after is not None:
        stats = after.compare_to(before, "traceback" if top < 0 else "lineno")
        lines = []
        for stat in stats[: abs(top)]:
            frames = stat.traceback.format()[-12:] if top < 0 else [str(stat.traceback[0])]
            lines.append(
                f"{stat.size_diff / n:8.0f} B/pred {stat.count_diff / n:6.2f} blocks/pred  "
                + " <- ".join(f.strip() for f in frames if f.strip() and not f.startswith("    "))
            )
        result["top"] = lines
    if heap:
        result["heap"] = {k: (now_heap[k] - base_heap.get(k, 0)) / n / 1024 for k in now_heap}
    return result


def worker(args: argparse.Namespace) -> None:
    import aiohttp  # noqa: F401

    import areplicate  # noqa: F401

    async def main() -> dict[str, Any]:
        return await measure(
            args.url,
            args.n,
            traced=args.traced,
            top=args.top,
            hold=args.hold,
            paced=not args.unpaced,
            heap=args.heap,
        )

    # A loop of our own, never closed: asyncio.run would cancel the 10,000 waits on the way out.
    loop = asyncio.new_event_loop()
    print(json.dumps(loop.run_until_complete(main())), flush=True)
    os._exit(0)  # skip the clean-up: see measure()


# -- the driver --------------------------------------------------------------------------------


def run_once(
    n: int,
    *,
    traced: bool,
    top: int,
    hold: int,
    unpaced: bool,
    verbose: bool,
    heap: bool = False,
) -> dict[str, Any]:
    server = FakeServer(["--models", "memory:setup"], cwd=HERE)
    try:
        cmd = [sys.executable, __file__, "--worker", "--url", server.url, "-n", str(n)]
        cmd += ["--top", str(top), "--hold", str(hold)] + (["--traced"] if traced else [])
        cmd += ["--unpaced"] if unpaced else []
        cmd += ["--heap"] if heap else []
        out = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE,
            text=True, check=False, timeout=1200,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"worker failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    finally:
        server.release()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="predictions in flight at once")
    parser.add_argument("-r", "--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument(
        "--top", type=int, default=0, help="show the N largest tracemalloc lines (-N: tracebacks)"
    )
    parser.add_argument(
        "--hold", type=int, default=0, help="Prefer: wait seconds on each create (default none)"
    )
    parser.add_argument(
        "--unpaced", action="store_true", help="no request budget: polls as fast as answered"
    )
    parser.add_argument(
        "--heap",
        action="store_true",
        help="also where the untraced run's RSS went: pymalloc's and malloc's heaps, KB/pred",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the set-up's progress")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    mode = "unpaced" if args.unpaced else "paced at 3000 requests/min"
    print(f"python {sys.version.split()[0]}, {args.n} in flight, {mode}, {args.runs} runs\n")
    print("| run | in flight | tracemalloc KB/pred | its peak | RSS KB/pred (untraced run) |")
    print("|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        kwargs = {"hold": args.hold, "unpaced": args.unpaced, "verbose": args.verbose}
        traced = run_once(args.n, traced=True, top=args.top, **kwargs)
        plain = run_once(args.n, traced=False, top=0, heap=args.heap, **kwargs)
        print(
            f"| {run} | {traced['in_flight']} | {traced['traced_kb']:.2f} "
            f"| {traced['peak_kb']:.2f} | {plain['rss_kb']:.2f} |",
            flush=True,
        )
        for line in traced.get("top", []):
            print("   ", line)
        if "heap" in plain:
            heap = plain["heap"]
            totals = {k: v for k, v in heap.items() if not k.endswith((" used", " free"))}
            print("    heap, KB/pred:", ", ".join(f"{k} {v:+.2f}" for k, v in totals.items()))
            free = sorted((k for k in heap if k.endswith(" B free")), key=lambda k: -heap[k])
            print(
                "    most free, KB/pred:",
                ", ".join(f"{k[:-5]} {heap[k]:+.2f} (used {heap[k[:-5] + ' used']:+.2f})"
                          for k in free[:8]),
            )  # fmt: skip


if __name__ == "__main__":
    main()
