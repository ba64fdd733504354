"""The ``areplicate`` command: run, batch, predictions, demo, fake-server.

One module per subcommand, each with ``register(subparsers)`` and a handler that returns the exit
code. :func:`main` is the console script (``areplicate``) and ``python -m areplicate``. rich is used
here and nowhere else in the package.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

from areplicate._cli import batch, demo, fake_server, predictions, run
from areplicate._cli._common import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    CLIError,
    describe_error,
    print_error,
)
from areplicate._cli.batch import Checkpoint
from areplicate._errors import ReplicateError
from areplicate._version import package_version

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
An asyncio client for the Replicate API, from the shell.

  areplicate demo                                     see it work: no token, no network
  areplicate run owner/model prompt="a llama"         one prediction, its output printed
  areplicate batch owner/model in.jsonl -o out.jsonl  many, resumable after a crash

Set REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens) for everything but the demo
and the fake server; REPLICATE_BASE_URL points the client at another API (a proxy, a fake).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``areplicate`` command."""
    parser = argparse.ArgumentParser(
        prog="areplicate",
        description=_DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"areplicate {package_version()}")
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="log every request and retry to standard error (tokens are never logged)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, batch, predictions, demo, fake_server):
        module.register(subparsers)
    return parser


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped, e.g. under pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write one formatted record; a failure goes to logging's own error hook, not up."""
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging's contract: a handler reports its own failure, never raises
            self.handleError(record)


_HANDLER = _Stderr()
_HANDLER.setFormatter(logging.Formatter("areplicate: %(levelname)s: %(message)s"))


@contextlib.contextmanager
def _logging(*, verbose: bool) -> Iterator[None]:
    """Warnings (and with ``--verbose`` every request and retry) to standard error, one line each,
    for the duration of a command (then the loggers are put back as they were).

    Retries the client makes on its own are routine: they are shown only with ``--verbose``; an
    error that outlasts them is reported by the command itself.
    """
    saved = []
    for name, level in (
        ("areplicate", logging.DEBUG if verbose else logging.WARNING),
        ("stamina", logging.INFO if verbose else logging.ERROR),
    ):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(level)
        logger.addHandler(_HANDLER)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
            logger.removeHandler(_HANDLER)


def main(argv: Sequence[str] | None = None, *, checkpoint: Checkpoint | None = None) -> int:
    """Run the ``areplicate`` command with ``argv`` (default: ``sys.argv[1:]``); the exit code.

    ``fake-server`` is dispatched before argparse sees the line, since its options belong to
    the fake's own parser. Errors the user can act on (a bad argument, an API error) are printed
    as one line with a distinct exit code, never as a traceback; anything else is a bug and
    propagates. ``checkpoint`` reaches ``batch`` only (the crash tests' hook; see its module).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == [fake_server.NAME]:
        return fake_server.main(args_list[1:])
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_list)
        if extra and args.command == "run":
            # `run REF --json prompt=hi`: inputs given after an option still count as inputs.
            args.inputs.extend(a for a in extra if not a.startswith("-"))
            extra = [a for a in extra if a.startswith("-")]
        if extra and args.command == "batch":
            extra = batch.take_positionals(args, extra)  # `batch REF --out r.jsonl in.jsonl`
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    args.checkpoint = checkpoint
    try:
        with _logging(verbose=args.verbose):
            code: int = args.handler(args)
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except (CLIError, ReplicateError) as exc:
        message, code = describe_error(exc)
        print_error(message)
    return code
