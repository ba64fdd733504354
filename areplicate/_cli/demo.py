"""``areplicate demo``: the whole client at work, offline, in a few seconds.

It starts the fake Replicate API (:mod:`areplicate.testing`) on this process's event loop, streams
one answer from ``demo/chat``, fans out ~200 predictions over three models with
:func:`areplicate.as_completed` and :func:`areplicate.gather_predictions` (one of the models fails
on purpose), saves the image files, and reports what it took: the request counts come from the
fake's own counters. With ``--live`` it does a small fan-out against the real API instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from rich.table import Table

from areplicate._cli._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    CLIError,
    make_client,
    run_main,
    stderr,
    stdout,
)
from areplicate._cli._outputs import save_files
from areplicate._cli._progress import ProgressBoard, Row
from areplicate._client import Client
from areplicate._fanout import Progress, as_completed, gather_predictions

__all__ = ["execute", "register"]

_DEFAULT_COUNT = 200
_CONCURRENCY = 32
_LIVE_MODEL = "black-forest-labs/flux-schnell"
_LIVE_PROMPTS = (
    "a llama reading a newspaper, watercolor",
    "a llama surfing a wave at sunset, photo",
    "a tiny llama made of glass on a desk",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="see the client at work: no token, no network, a few seconds",
        description=(
            "Start a fake Replicate API in this process, stream a reply, fan out ~200 "
            "predictions with a progress bar, save the image outputs and print a summary. "
            "Needs no token and no network."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", metavar="DIR", type=Path, help="where to save image outputs (default: a temp dir)"
    )
    p.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help=f"predictions to fan out (default {_DEFAULT_COUNT}; {len(_LIVE_PROMPTS)} with --live)",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help=(
            f"run against the real API with REPLICATE_API_TOKEN: a few images from {_LIVE_MODEL} "
            "(billed to your account, a few cents)"
        ),
    )
    p.set_defaults(handler=execute)


def execute(args: argparse.Namespace) -> int:
    """Run the ``demo`` subcommand; returns the exit code.

    Without ``--out`` the images go to a fresh temporary directory that is left in place (its
    path is printed), so the files can be looked at after the demo ends.
    """
    if args.count is not None and args.count < 1:
        raise CLIError(f"--count must be at least 1, got {args.count}")
    out: Path = (
        args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="areplicate-demo-"))
    )
    if args.live:
        client = make_client()
        count = args.count or len(_LIVE_PROMPTS)
        return run_main(lambda: _live(client, out, count))
    return run_main(lambda: _offline(out, args.count or _DEFAULT_COUNT))


@attrs.define
class _Tally:
    """One model's row in the closing summary: how many predictions were planned and how they ended.

    ``failed`` counts every prediction that did not succeed, whether the model failed it or the
    client raised (``Progress.failed + Progress.errors``), so the summary adds up to ``predictions``.
    """

    model: str
    note: str = ""
    predictions: int = 0
    succeeded: int = 0
    failed: int = 0


def _on_progress(row: Row, tally: _Tally) -> Callable[[Progress], None]:
    """A ``gather_predictions`` progress callback that moves one row and its tally.

    The tally is what the summary prints; the row only draws. Both are updated from the same
    callback so the bar and the table can never disagree.
    """

    def update(progress: Progress) -> None:
        """Turn the cumulative ``Progress`` into one row step.

        ``gather_predictions`` reports totals, not events, so whether this call was a success is
        read from the rise in ``succeeded`` since the last call.
        """
        ok = progress.succeeded > tally.succeeded
        tally.succeeded, tally.failed = progress.succeeded, progress.failed + progress.errors
        row.finished(ok, "", was_in_flight=False)
        row.set_in_flight(progress.in_flight)

    return update


async def _offline(out: Path, count: int) -> int:
    """The offline demo: fake API on this loop, one stream, then the three-model fan-out.

    The fake's request counters are cleared after the streaming part, so the summary's
    "requests per prediction" speaks about the fan-out alone. The split of ``count`` is about
    half images, 30 % of the failing model and the rest of the instant one; each part may be 0
    for a small ``count``.
    """
    from areplicate.testing import FakeReplicate, add_demo_models

    err = stderr()
    fake = FakeReplicate()
    add_demo_models(fake)
    async with (
        fake.serve() as base_url,
        Client("r8_demo", base_url=base_url, rate_limits=None) as client,
    ):
        err.print(
            f"[bold]areplicate demo[/]: a fake Replicate API at {base_url} "
            "(in this process: no token, no network)\n",
            markup=True,
        )
        # 1. Streaming: tokens print as the model yields them.
        err.print("[bold]1. Streaming[/] demo/chat:", markup=True)
        prediction = await client.predictions.create(
            "demo/chat", {"prompt": "Tell me about llamas"}
        )
        async for event in client.predictions.stream(prediction):
            if event.event == "output":
                sys.stderr.write(event.data)
                sys.stderr.flush()
        sys.stderr.write("\n\n")
        await client.predictions.wait(prediction)

        # 2. Fan-out: three models at once, under one client's connection pool and budget.
        pixels = max(1, count // 2)
        flaky = max(0, count * 3 // 10)
        echo = max(0, count - pixels - flaky)
        err.print(
            f"[bold]2. Fan-out[/]: {count} predictions over 3 models, {_CONCURRENCY} at a time each",
            markup=True,
        )
        tallies = [
            _Tally("demo/pixel", "returns a PNG file"),
            _Tally("demo/flaky", "fails on purpose for seeds divisible by 5"),
            _Tally("demo/echo", "instant"),
        ]
        for tally, n in zip(tallies, (pixels, flaky, echo), strict=True):
            tally.predictions = n
        fake.counts.clear()
        started = time.perf_counter()
        saved: list[Path] = []
        with ProgressBoard(err) as board:
            rows = [
                board.add(t.model, t.predictions, plain_every=max(1, t.predictions // 4))
                for t in tallies
            ]

            async def images() -> None:
                inputs = [{"prompt": f"llama #{i}", "size": 16} for i in range(pixels)]
                async with as_completed(
                    client, "demo/pixel", inputs, concurrency=_CONCURRENCY
                ) as results:
                    async for done in results:
                        ok = done.ok
                        if ok and done.prediction is not None:
                            saved.extend(
                                await save_files(
                                    client, done.prediction.output, out, prefix=f"{done.index:03d}-"
                                )
                            )
                        tallies[0].succeeded += ok
                        tallies[0].failed += not ok
                        rows[0].finished(ok, "", was_in_flight=False)
                        rows[0].set_in_flight(results.in_flight)

            async def others() -> None:
                await gather_predictions(
                    client,
                    "demo/flaky",
                    [{"seed": i} for i in range(flaky)],
                    concurrency=_CONCURRENCY,
                    on_progress=_on_progress(rows[1], tallies[1]),
                )
                await gather_predictions(
                    client,
                    "demo/echo",
                    [{"text": f"hello {i}"} for i in range(echo)],
                    concurrency=_CONCURRENCY,
                    on_progress=_on_progress(rows[2], tallies[2]),
                )

            await asyncio.gather(images(), others())
        wall = time.perf_counter() - started
        counts = dict(fake.counts)
    _report(tallies, counts, wall, out, saved)
    return EXIT_OK


def _report(
    tallies: list[_Tally], counts: dict[str, int], wall: float, out: Path, saved: list[Path]
) -> None:
    """Print the summary table and the request accounting to stdout.

    The counts are the fake's keys (``"METHOD /path/{id}"``). Downloads and stream connections
    are not API requests (they go to the delivery and streaming hosts, outside the rate limit),
    so they are left out of the per-prediction figure, which is the number the demo exists to
    show.
    """
    console = stdout()
    table = Table("model", "predictions", "succeeded", "failed", "", title="Summary")
    for t in tallies:
        table.add_row(t.model, str(t.predictions), str(t.succeeded), str(t.failed), t.note)
    total = sum(t.predictions for t in tallies)
    ok = sum(t.succeeded for t in tallies)
    table.add_row("total", str(total), str(ok), str(total - ok), "")
    console.print(table)
    creates = sum(
        n for k, n in counts.items() if k.startswith("POST") and k.endswith("/predictions")
    )
    polls = counts.get("GET /v1/predictions/{id}", 0)
    api = sum(n for k, n in counts.items() if "/delivery/" not in k and "/streams/" not in k)
    downloads = sum(n for k, n in counts.items() if "/delivery/" in k)
    per = api / total if total else 0.0
    console.print(
        f"API requests: {api} for {total} predictions = {per:.2f} per prediction "
        f"({creates} creates, {polls} polls; Prefer: wait lets most finish inside the create)"
    )
    console.print(f"File downloads: {downloads}")
    console.print(f"Wall time: {wall:.2f} s for the fan-out")
    console.print(f"Outputs: {len(saved)} files in {out}")


async def _live(client: Client, out: Path, count: int) -> int:
    """The ``--live`` demo: a few real images, four at a time, saved to ``out``.

    It costs money on the caller's account, which is why it is opt-in and small by default. The
    exit code is ``EXIT_FAILED`` unless every prediction succeeded.
    """
    err = stderr()
    err.print(
        f"Running {count} prediction(s) of {_LIVE_MODEL} on your Replicate account "
        "(billed, a few cents).",
        markup=False,
    )
    inputs = [{"prompt": _LIVE_PROMPTS[i % len(_LIVE_PROMPTS)]} for i in range(count)]
    started = time.perf_counter()
    saved: list[Path] = []
    tally = _Tally(_LIVE_MODEL, predictions=count)
    async with client:
        with ProgressBoard(err) as board:
            row = board.add(_LIVE_MODEL, count)
            async with as_completed(client, _LIVE_MODEL, inputs, concurrency=4) as results:
                async for done in results:
                    prediction = done.prediction
                    ok = done.ok
                    if ok and prediction is not None:
                        saved.extend(
                            await save_files(
                                client, prediction.output, out, prefix=f"{done.index}-"
                            )
                        )
                    tally.succeeded += ok
                    tally.failed += not ok
                    reason: Any = done.error or (prediction.error if prediction else "")
                    status = prediction.status if prediction else "error"
                    row.finished(ok, f"#{done.index}: {status} {reason or ''}".rstrip())
    wall = time.perf_counter() - started
    console = stdout()
    console.print(
        f"{tally.succeeded} of {count} succeeded in {wall:.1f} s; {len(saved)} file(s) in {out}"
    )
    return EXIT_OK if tally.succeeded == count else EXIT_FAILED
