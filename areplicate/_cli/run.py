"""``areplicate run REF key=value …``: run one prediction and print its output."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import anyio

from areplicate._cli._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    CLIError,
    json_line,
    make_client,
    parse_assignments,
    parse_lifetime,
    parse_model_ref,
    prediction_json,
    run_main,
    stderr,
)
from areplicate._cli._outputs import render_output, save_files
from areplicate._client import Client
from areplicate._core.status import Status
from areplicate._models import Prediction, PredictionFailedError
from areplicate._outputs import is_output_url

__all__ = ["execute", "register"]

_EXAMPLES = """\
examples:
  areplicate run black-forest-labs/flux-schnell prompt="a llama in the snow" --save out/
  areplicate run meta/meta-llama-3-8b-instruct prompt="Hi" max_tokens=64 --stream
  areplicate run owner/model:<64-hex version> image=@photo.jpg scale=2
  id=$(areplicate run owner/model prompt=hi --no-wait)

values are JSON when they parse (steps=4 is a number, tags='["a","b"]' a list, seed=null None)
and text otherwise; key=@path uploads a local file; key=@@text passes text starting with '@'.
Ctrl-C cancels the prediction.

"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    p = subparsers.add_parser(
        "run",
        help="run one prediction and print its output",
        description="Run one prediction, wait for it, and print its output.",
        epilog=_EXAMPLES + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "ref", metavar="REF", help="owner/name (official model), owner/name:VERSION, or VERSION"
    )
    p.add_argument("inputs", nargs="*", metavar="KEY=VALUE", help="model inputs")
    p.add_argument("--json", action="store_true", help="print the whole prediction as JSON")
    p.add_argument(
        "--no-wait", action="store_true", help="start it and print its id without waiting"
    )
    p.add_argument("--stream", action="store_true", help="print output tokens as they arrive")
    p.add_argument("--save", metavar="DIR", type=Path, help="save file outputs into DIR")
    p.add_argument(
        "--lifetime", metavar="DURATION", help="cancel it after this long (e.g. 30s, 5m, 1h)"
    )
    p.add_argument(
        "--validate",
        action="store_true",
        help="check the input against the model's schema before sending it",
    )
    p.set_defaults(handler=execute)


def execute(args: argparse.Namespace) -> int:
    """Run the ``run`` subcommand; returns the exit code.

    Everything that can be checked without the network (the reference, ``--lifetime``, the
    ``key=value`` inputs, conflicting flags) is checked here, before a client is made, so a typo
    costs no request and no token.
    """
    ref = str(parse_model_ref(args.ref))
    lifetime = parse_lifetime(args.lifetime)
    if args.no_wait and (args.stream or args.save):
        raise CLIError("--no-wait cannot be combined with --stream or --save")
    inputs = parse_assignments(args.inputs)
    return run_main(lambda: _run(args, ref, inputs, lifetime))


async def _run(
    args: argparse.Namespace, ref: str, inputs: dict[str, Any], lifetime: str | None
) -> int:
    """The ``run`` subcommand once the arguments are valid: create, wait or stream, save, print.

    Three paths: ``--no-wait`` prints the id (or JSON) as soon as the create returns; ``--stream``
    creates and then follows the event stream; otherwise ``settle`` waits with ``Prefer: wait``
    first. ``settle`` rather than ``finish`` on purpose: a failed prediction is still printed
    (status, error, ``--json``) and mapped to ``EXIT_FAILED`` here instead of surfacing as a
    traceback. Outputs are saved only for a success, and only while the client is open, since
    the downloads use its session.
    """
    err = stderr()
    async with make_client() as client:
        if args.no_wait:
            prediction = await client.predictions.create(
                ref, inputs, lifetime=lifetime, validate=args.validate
            )
            _print(json_line(prediction_json(prediction)) if args.json else prediction.id)
            return EXIT_OK
        if args.stream:
            prediction = await client.predictions.create(
                ref, inputs, lifetime=lifetime, validate=args.validate
            )
            prediction = await _stream(client, prediction, echo=not args.json)
        else:
            prediction = await client.predictions.create_and_wait(
                ref, inputs, hold=True, lifetime=lifetime, validate=args.validate
            )
        saved: list[Path] = []
        if args.save is not None and prediction.status == Status.SUCCEEDED:
            saved = await save_files(client, prediction.output, args.save)
    if args.json:
        data = prediction_json(prediction)
        if args.save is not None:
            data["saved"] = [str(p) for p in saved]
        _print(json_line(data, indent=2))
    elif not args.stream:
        text = render_output(prediction.output)
        if text:
            _print(text)
    for path in saved:
        err.print(f"saved {path}")
    if prediction.status != Status.SUCCEEDED:
        reason = prediction.error or f"it ended {prediction.status}"
        err.print(f"[red]prediction {prediction.id} {prediction.status}:[/] {reason}", markup=True)
        return EXIT_FAILED
    return EXIT_OK


async def _stream(client: Client, prediction: Prediction, *, echo: bool) -> Prediction:
    """Print ``output`` events as they arrive, then return the finished prediction.

    Interrupted (Ctrl-C), it cancels the prediction before giving up, as a plain ``run`` does.
    """
    try:
        if prediction.urls.stream:
            await _print_events(client, prediction, echo=echo)
        else:
            stderr().print("(this model does not stream its output; waiting for it instead)")
        final = await client.predictions.wait(prediction)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            await client.predictions.cancel(prediction)
        raise
    if echo and not prediction.urls.stream:
        text = render_output(final.output)
        if text:
            _print(text)
    return final


async def _print_events(client: Client, prediction: Prediction, *, echo: bool) -> None:
    """Copy a prediction's ``output`` events to stdout, adding a final newline if one is missing.

    A failure reported on the stream is swallowed: the caller's ``wait`` fetches the final state,
    which holds the same error and the logs, so it is printed once and with the right exit code.
    """
    ends_with_newline = True
    try:
        async for event in client.predictions.stream(prediction):
            if event.event == "output" and echo:
                text = event.data
                if is_output_url(text):
                    text += "\n"  # a file model streams URLs: one per line
                sys.stdout.write(text)
                sys.stdout.flush()
                ends_with_newline = text.endswith("\n")
    except PredictionFailedError:
        pass  # the final state (and its error) comes from wait()
    finally:
        if echo and not ends_with_newline:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _print(text: str) -> None:
    """Write one result to stdout with exactly one trailing newline, and flush.

    stdout (not rich's console) so that piped output is the bare value: ``id=$(areplicate run
    ... --no-wait)`` must not capture markup or wrapping.
    """
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
