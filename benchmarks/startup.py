"""Start-up benchmark: ``import areplicate`` against ``import aiohttp`` alone.

    python benchmarks/startup.py            # best of 15 fresh interpreters each
    python benchmarks/startup.py -n 31      # more runs: a steadier best on a busy machine
    python benchmarks/startup.py --modules  # also list the heaviest modules areplicate itself adds

Each sample is a fresh ``python -c "import X"`` subprocess, timed from the outside (wall clock,
interpreter start-up included), so nothing is cached between samples but the OS's file cache. The
two statements are interleaved sample by sample, so a burst of load on a shared machine hits both.
The best of N is the least noisy estimate of what an import costs; the median is printed too.

Bytecode: aiohttp's ``.pyc`` files were written when pip installed it, as they are for any wheel
installed from a registry. An editable install of areplicate under ``PYTHONDONTWRITEBYTECODE=1``
(this project's sandbox sets it) has none, so every interpreter compiles areplicate's source
again, which alone cost about as much as the rest of the import. So the package is byte-compiled
first (``compileall``, as a wheel install would; a ``.pyc`` is checked against its source's
mtime, so a stale one is never used); ``--source`` deletes them and measures without.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "areplicate"
STATEMENTS = {
    "python": "pass",
    "aiohttp": "import aiohttp",
    "areplicate": "import areplicate",
}


def sample(statement: str) -> float:
    """Seconds one fresh interpreter takes to run ``statement`` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - started


def heaviest(top: int) -> list[tuple[int, str]]:
    """The ``top`` modules with the largest own import time (µs) under ``-X importtime`` that
    ``import areplicate`` loads and ``import aiohttp`` does not."""

    def own_times(statement: str) -> dict[str, int]:
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        times: dict[str, int] = {}
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, _cumulative, name = line.removeprefix("import time:").split("|")
            times[name.strip()] = int(own)
        return times

    base = own_times(STATEMENTS["aiohttp"])
    ours = own_times(STATEMENTS["areplicate"])
    extra = [(us, name) for name, us in ours.items() if name not in base]
    return sorted(extra, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="fresh interpreters per statement")
    parser.add_argument("--modules", action="store_true", help="list the heaviest added modules")
    parser.add_argument(
        "--source", action="store_true", help="compile areplicate from source in every interpreter"
    )
    args = parser.parse_args()
    if args.source:
        for cache in sorted(PACKAGE.rglob("__pycache__")):
            shutil.rmtree(cache)
    else:
        compileall.compile_dir(PACKAGE, quiet=1)
    run(args)


def run(args: argparse.Namespace) -> None:
    """Sample each statement ``args.n`` times, interleaved, and print the table."""
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for name, statement in STATEMENTS.items():
        sample(statement)  # warm the OS's file cache; not counted
        del name
    for _ in range(args.n):
        for name, statement in STATEMENTS.items():
            samples[name].append(sample(statement))

    best = {name: 1000 * min(times) for name, times in samples.items()}
    median = {name: 1000 * statistics.median(times) for name, times in samples.items()}
    how = "compiled from source each time" if args.source else "byte-compiled"
    print(f"python {sys.version.split()[0]}, best of {args.n} fresh interpreters, {how} (ms)\n")
    print("| statement | best ms | median ms |")
    print("|---|---|---|")
    for name, statement in STATEMENTS.items():
        print(f"| `{statement}` | {best[name]:.0f} | {median[name]:.0f} |")
    ratio = best["areplicate"] / best["aiohttp"]
    added = best["areplicate"] - best["aiohttp"]
    print(
        f"\n`import areplicate` / `import aiohttp`: {ratio:.2f}x best "
        f"({median['areplicate'] / median['aiohttp']:.2f}x median); "
        f"areplicate adds {added:.0f} ms on top of aiohttp"
    )
    if args.modules:
        print("\nheaviest modules areplicate adds (own time under -X importtime, µs):")
        for us, name in heaviest(25):
            print(f"  {us:>7}  {name}")


if __name__ == "__main__":
    main()
