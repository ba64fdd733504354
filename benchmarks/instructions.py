"""Instructions benchmark: client CPU per prediction counted by valgrind, against the raw floor.

    python benchmarks/instructions.py                 # instant model, areplicate and raw-wait
    python benchmarks/instructions.py --contenders areplicate --small 200 --large 600

CPU seconds on a shared machine move by a third from run to run; the instructions the client's
interpreter executes move far less. What still moves them is the garbage collector: a full
collection walks the whole heap (millions of instructions) and comes every hundred young ones, so
a short window holds one or none. With the old 200 and 600 predictions raw-wait came out in two
groups 6 % apart (648k and 690k); with 300 and 1500, several full collections fall in the window
and repeated runs agree within about 1 % for both contenders. Each contender runs the instant model
(``demo/echo``, concurrency 100, ``fanout.py``'s own runners) in a fresh interpreter under
``valgrind --tool=callgrind``, once with ``--small`` and once with ``--large`` predictions, and the
difference divided by the difference in predictions is its cost per prediction: start-up, imports
and the warm-up cancel out. The fake runs natively in its own process and is not counted.

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
from pathlib import Path
from typing import Any

from _fake import FakeServer  # benchmarks/ is the script's own directory, first on sys.path

HERE = Path(__file__).resolve().parent


def worker(url: str, who: str, n: int) -> None:
    """Run ``n`` instant predictions through ``who`` (after fanout.py's warm-up), counted or not."""
    import fanout

    runner = fanout.RUNNERS[who]

    async def run(inputs: list[dict[str, Any]]) -> None:
        await runner(url, "demo/echo", inputs, 100, False)

    asyncio.run(run([{"i": -i} for i in range(1, 21)]))
    asyncio.run(run([{"i": i} for i in range(n)]))


def instructions(url: str, who: str, n: int) -> int:
    """Instructions the interpreter ran for a whole worker of ``n`` predictions."""
    # The real interpreter, not a shim script in front of it (pyenv's would be what is counted).
    python = os.path.realpath(sys.executable)
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        python, __file__, "--worker", who, "--url", url, "--n", str(n),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"{who} worker failed under valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", default="areplicate,raw-wait")
    parser.add_argument("--small", type=int, default=300, help="predictions in the short run")
    parser.add_argument("--large", type=int, default=1500, help="predictions in the long run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.url, args.worker, args.n)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    contenders = args.contenders.split(",")
    fake = FakeServer(cwd=HERE.parent)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # one valgrind per core
            runs = {
                (who, n): pool.submit(instructions, fake.url, who, n)
                for who in contenders
                for n in (args.small, args.large)
            }
            per = {
                who: (runs[who, args.large].result() - runs[who, args.small].result())
                / (args.large - args.small)
                for who in contenders
            }
    finally:
        fake.close()
    print(f"instant model, concurrency 100, {args.large} - {args.small} predictions\n")
    print("| client | k instructions/pred | ×floor |")
    print("|---|---|---|")
    floor = per.get("raw-wait")
    for who in contenders:
        ratio = f"{per[who] / floor:.2f}" if floor else "–"
        print(f"| {who} | {per[who] / 1000:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
