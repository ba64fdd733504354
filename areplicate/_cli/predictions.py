"""``areplicate predictions list|get|cancel``: look at and stop your predictions."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from areplicate._cli._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    CLIError,
    json_line,
    make_client,
    positive_int,
    prediction_json,
    run_main,
    stdout,
)
from areplicate._cli._outputs import render_output
from areplicate._core.times import format_timestamp
from areplicate._models import Prediction

__all__ = ["execute", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``predictions`` subcommand and its ``list``, ``get`` and ``cancel``."""
    p = subparsers.add_parser(
        "predictions",
        help="list, show or cancel predictions",
        description="List, show or cancel your predictions.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list", help="your predictions, newest first", description="List predictions, newest first."
    )
    ls.add_argument(
        "--limit", "-n", type=positive_int, default=20, metavar="N", help="how many (default 20)"
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    get = actions.add_parser("get", help="one prediction", description="Show one prediction.")
    get.add_argument("id", metavar="ID", help="prediction id")
    get.add_argument("--json", action="store_true", help="the whole prediction as JSON")
    cancel = actions.add_parser(
        "cancel", help="cancel a prediction", description="Ask the API to cancel a prediction."
    )
    cancel.add_argument("id", metavar="ID", help="prediction id")
    cancel.add_argument("--json", action="store_true", help="the prediction afterwards, as JSON")
    p.set_defaults(handler=execute)


def execute(args: argparse.Namespace) -> int:
    """Run ``predictions ACTION``; returns the exit code."""
    if args.action in ("get", "cancel") and (not args.id.strip() or "/" in args.id):
        raise CLIError(f"not a prediction id: {args.id!r}")
    return run_main(lambda: _execute(args))


async def _execute(args: argparse.Namespace) -> int:
    """Do one ``predictions`` action with a client that is open for exactly that action.

    ``list`` stops after ``--limit`` items and closes the listing at once, so no further page is
    fetched behind the user's back. ``get`` and ``cancel`` print after the client is closed, as
    nothing left to print needs the network.
    """
    async with make_client() as client:
        if args.action == "list":
            found: list[Prediction] = []
            listing = client.predictions.list()
            try:
                async for prediction in listing:
                    found.append(prediction)
                    if len(found) >= args.limit:
                        break
            finally:
                aclose = getattr(listing, "aclose", None)
                if aclose is not None:
                    await aclose()  # stop paging now, not at garbage collection
            _print_list(found, as_json=args.json)
            return EXIT_OK
        if args.action == "get":
            prediction = await client.predictions.get(args.id)
        else:
            prediction = await client.predictions.cancel(args.id)
    if args.json:
        _write(json_line(prediction_json(prediction), indent=2))
    else:
        _print_one(prediction)
    return EXIT_OK


def _when(prediction: Prediction) -> str:
    """A prediction's creation time for a table cell; ``-`` when the API did not send one."""
    return format_timestamp(prediction.created_at) if prediction.created_at else "-"


def _print_list(predictions: list[Prediction], *, as_json: bool) -> None:
    """Print a list of predictions: JSON lines, a tab-separated line each when piped, or a table.

    The plain form exists so ``areplicate predictions list | cut -f1`` works; a rich table is only
    drawn for a terminal.
    """
    if as_json:
        for p in predictions:
            _write(json_line(prediction_json(p)))
        return
    console = stdout()
    if not console.is_terminal:
        for p in predictions:
            _write("\t".join((p.id, str(p.status), p.model or "-", _when(p))))
        return
    table = Table("id", "status", "model", "created")
    for p in predictions:
        table.add_row(p.id, str(p.status), p.model or "-", _when(p))
    console.print(table)


def _print_one(p: Prediction) -> None:
    """Print one prediction as aligned ``key: value`` lines, its rendered output last.

    The end time and the error appear only when set, so a running prediction shows four lines.
    """
    lines = [
        f"id:      {p.id}",
        f"model:   {p.model or '-'}",
        f"status:  {p.status}",
        f"created: {_when(p)}",
    ]
    if p.completed_at is not None:
        lines.append(f"ended:   {format_timestamp(p.completed_at)}")
    if p.error:
        lines.append(f"error:   {p.error}")
    output = render_output(p.output)
    if output:
        lines.append("output:")
        lines.append(output)
    _write("\n".join(lines))


def _write(text: str) -> None:
    """One line to stdout, flushed, bypassing rich so piped output carries no markup."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
