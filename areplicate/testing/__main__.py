"""``python -m areplicate.testing``: run the fake Replicate API standalone, with the demo models.

``--models package.module:setup`` (repeatable) imports your module and calls ``setup(fake)`` with
the FakeReplicate before it serves, so your own models (``fake.add_model``) are there too.

It prints ``Fake Replicate API at <base_url>`` on one line once it is listening (``--port 0``
picks a free port), then serves until SIGINT or SIGTERM. ``GET <base_url>/_fake/stats`` returns
the request counters (``DELETE`` resets them), for benchmarks running the fake as a process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from areplicate.testing._demo import add_demo_models
from areplicate.testing._fake import FakeReplicate
from areplicate.testing._limits import FakeRateLimits, Faults

__all__ = ["main", "parser"]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _rate_limits(text: str) -> str:
    if text.strip().lower() != "off":
        try:
            FakeRateLimits.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(
        prog="python -m areplicate.testing",
        description="Run a fake Replicate API (with demo models) for tests, demos and benchmarks.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default 8000)")
    p.add_argument("--prefix", default="/v1", help="path the API lives under (default /v1)")
    p.add_argument("--token", default=None, help="the only token accepted (default: any token)")
    p.add_argument(
        "--rate-limits",
        type=_rate_limits,
        default="off",
        metavar="off|real|CREATES/BURST[,OTHERS/BURST]",
        help="per-token limits, per minute. 'real': 600 creates/min (burst 100) and 3000 other "
        "requests/min (burst 500); '120/10': a low-credit account, 120 creates/min, burst 10 "
        "(default off)",
    )
    p.add_argument(
        "--fail-rate",
        type=_fraction,
        default=0.0,
        help="fraction of API requests failed before processing, split evenly between 429 and 5xx",
    )
    p.add_argument("--error-429-rate", type=_fraction, default=0.0, help="fraction answered 429")
    p.add_argument("--error-5xx-rate", type=_fraction, default=0.0, help="fraction answered 5xx")
    p.add_argument(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        help="fraction processed whose response is cut off mid-body",
    )
    p.add_argument("--latency", type=_seconds, default=0.0, help="seconds added to each request")
    p.add_argument("--seed", type=int, default=None, help="seed for the fault dice")
    p.add_argument(
        "--data-ttl",
        type=_seconds,
        default=None,
        help="seconds until a prediction's data is removed",
    )
    p.add_argument("--public-base-url", default=None, help="base URL written into urls.* links")
    p.add_argument("--no-demo", action="store_true", help="start without the demo models")
    p.add_argument(
        "--models",
        action="append",
        default=[],
        metavar="PACKAGE.MODULE:FUNCTION",
        help="your own models: import PACKAGE.MODULE (from the current directory too) and call "
        "FUNCTION(fake) with the FakeReplicate before serving, e.g. --models myapp.fakes:setup "
        "where setup calls fake.add_model(...); repeatable",
    )
    p.add_argument(
        "--record-requests",
        action="store_true",
        help="keep a log of every request in memory (off by default: it grows without bound)",
    )
    return p


def load_setup(spec: str) -> Callable[[FakeReplicate], object]:
    """The ``FUNCTION`` of a ``PACKAGE.MODULE:FUNCTION`` spec; ValueError saying what is wrong."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ValueError(f"--models wants PACKAGE.MODULE:FUNCTION, got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: the user's own package
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--models {spec}: cannot import {module_name!r}: {exc}") from None
    target: Any = getattr(module, attr, None)
    if target is None or not callable(target):
        raise ValueError(f"--models {spec}: {module_name} has no function {attr!r}")
    return target  # type: ignore[no-any-return]


def run_setups(fake: FakeReplicate, specs: Sequence[str]) -> None:
    """Call each ``--models`` setup function with ``fake``; ValueError saying which one failed."""
    for spec in specs:
        if inspect.isawaitable(load_setup(spec)(fake)):
            raise ValueError(f"--models {spec}: the setup function must not be async")


def _faults(args: argparse.Namespace) -> Faults | None:
    rate_429 = args.error_429_rate + args.fail_rate / 2
    rate_5xx = args.error_5xx_rate + args.fail_rate / 2
    if not (rate_429 or rate_5xx or args.drop_rate or args.latency):
        return None
    return Faults(
        error_429_rate=rate_429,
        error_5xx_rate=rate_5xx,
        drop_rate=args.drop_rate,
        latency=args.latency,
        seed=args.seed,
    )


async def _serve(fake: FakeReplicate, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with fake.serve(args.host, args.port, args.prefix) as url:
        print(f"Fake Replicate API at {url}", flush=True)
        names = sorted(fake._models)
        if names:
            print(f"models: {', '.join(names)}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and serve until interrupted; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        faults = _faults(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fake = FakeReplicate(
        token=args.token,
        rate_limits=None
        if args.rate_limits.strip().lower() == "off"
        else FakeRateLimits.parse(args.rate_limits),
        faults=faults,
        data_ttl=args.data_ttl,
        public_base_url=args.public_base_url,
        record_requests=args.record_requests,
    )
    if not args.no_demo:
        add_demo_models(fake)
    try:
        run_setups(fake, args.models)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(fake, args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
