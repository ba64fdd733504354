"""Instructions benchmark: client CPU per prediction counted by valgrind, against the raw floor.

    python benchmarks/instructions.py                 # (a) instant model, areplicate and raw-wait
    python benchmarks/instructions.py --workload b    # (b) a 2 s model
    python benchmarks/instructions.py --workload c    # (c) paced at the real limits
    python benchmarks/instructions.py --contenders areplicate --small 200 --large 600

CPU seconds on a shared machine move by a third from run to run; the instructions the client's
interpreter executes move far less. What still moves them is the garbage collector: a full
collection walks the whole heap (millions of instructions) and comes every hundred young ones, so
a short window holds one or none. With the old 200 and 600 predictions raw-wait came out in two
groups 6 % apart (648k and 690k); with 300 and 1500, several full collections fall in the window
and repeated runs agree within about 1 % for both contenders. Each contender runs ``fanout.py``'s
workload with its own runners, in a fresh interpreter under ``valgrind --tool=callgrind``, once with
``--small`` and once with ``--large`` predictions, and the difference divided by the difference in
predictions is its cost per prediction: start-up, imports and the warm-up cancel out. The fake runs
natively in its own process and is not counted. The workloads are fanout.py's first three: (a) the
instant model at concurrency 100; (b) a 2 s model at concurrency 100; (c) the instant model at
concurrency 300 against the fake's real rate limits, areplicate with ``RateLimits()`` against the
paced floor, each run with a fake of its own (they would share its limits otherwise). Under valgrind
the client runs tens of times slower, so (c)'s creates wait less for the budget than natively; what
is counted is still the pacing work a create does.

What it does not see: cache misses and memory stalls. Instructions are the work; CPU time is the
work at the speed the caches allow, and a client that touches more memory per request loses more
to them (see the 2 s row in benchmarks/README.md). Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _fake import FakeServer  # benchmarks/ is the script's own directory, first on sys.path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Workload:
    title: str
    seconds: float  # how long the model runs; 0 is demo/echo
    concurrency: int
    limits: bool  # the fake's real rate limits, and the clients pacing at RateLimits()
    floor: str
    small: int
    large: int


WORKLOADS = {
    "a": Workload("(a) instant model, concurrency 100", 0.0, 100, False, "raw-wait", 300, 1500),
    "b": Workload("(b) 2 s model, concurrency 100", 2.0, 100, False, "raw-wait", 300, 1500),
    # 1000 paced creates take about 100 s of wall time, 2 at a time: about 4 minutes in all.
    "c": Workload(
        "(c) paced at the real limits, concurrency 300", 0.0, 300, True, "raw-wait-paced", 200, 1000
    ),
}


def worker(url: str, who: str, n: int, workload: Workload) -> None:
    """Run ``n`` predictions of ``workload`` through ``who`` after fanout.py's warm-up."""
    import fanout

    runner = fanout.RUNNERS[who]
    model = "demo/sleep" if workload.seconds else "demo/echo"
    extra = {"seconds": workload.seconds} if workload.seconds else {}

    async def run(model: str, inputs: list[dict[str, Any]]) -> None:
        await runner(url, model, inputs, workload.concurrency, workload.limits)

    asyncio.run(run("demo/echo", [{"i": -i} for i in range(1, 21)]))
    asyncio.run(run(model, [{**extra, "i": i} for i in range(n)]))


def instructions(who: str, n: int, name: str) -> int:
    """Instructions the interpreter ran for a whole worker of ``n`` predictions, on its own fake."""
    # The real interpreter, not a shim script in front of it (pyenv's would be what is counted).
    python = os.path.realpath(sys.executable)
    fake = FakeServer(["--rate-limits", "real"] if WORKLOADS[name].limits else [], cwd=HERE.parent)
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        python, __file__, "--worker", who, "--url", fake.url, "--n", str(n), "--workload", name,
    ]  # fmt: skip
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        fake.close()
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"{who} worker failed under valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS, default="a")
    parser.add_argument("--contenders", help="default: areplicate and the workload's floor")
    parser.add_argument("--small", type=int, help="predictions in the short run")
    parser.add_argument("--large", type=int, help="predictions in the long run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    load = WORKLOADS[args.workload]
    if args.worker:
        worker(args.url, args.worker, args.n, load)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    contenders = (args.contenders or f"areplicate,{load.floor}").split(",")
    small, large = args.small or load.small, args.large or load.large
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # one valgrind per core
        runs = {
            (who, n): pool.submit(instructions, who, n, args.workload)
            for who in contenders
            for n in (small, large)
        }
        per = {
            who: (runs[who, large].result() - runs[who, small].result()) / (large - small)
            for who in contenders
        }
    print(f"{load.title}, {large} - {small} predictions\n")
    print("| client | k instructions/pred | ×floor |")
    print("|---|---|---|")
    floor = per.get(load.floor)
    for who in contenders:
        ratio = f"{per[who] / floor:.2f}" if floor else "–"
        print(f"| {who} | {per[who] / 1000:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
