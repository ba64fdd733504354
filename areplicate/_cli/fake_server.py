"""``areplicate fake-server``: the fake Replicate API as a server of its own.

The same as ``python -m areplicate.testing`` (same options: ``--port``, ``--rate-limits real``,
``--fail-rate`` …), with the demo models. Point a client at it with
``REPLICATE_BASE_URL=http://127.0.0.1:8000/v1 REPLICATE_API_TOKEN=anything``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["NAME", "main", "register"]

NAME = "fake-server"

_DESCRIPTION = (
    "Serve a fake Replicate API (with the demo models) until Ctrl-C. Any token is accepted unless "
    "--token is given. Use it with: REPLICATE_BASE_URL=http://127.0.0.1:8000/v1 "
    "REPLICATE_API_TOKEN=anything areplicate run demo/echo text=hi"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """List ``fake-server`` in ``areplicate --help`` (its own arguments go to :func:`main`)."""
    subparsers.add_parser(
        NAME, help="serve a fake Replicate API for tests and demos", add_help=False
    )


def main(argv: Sequence[str]) -> int:
    """Parse the fake server's options (``--help`` included) and serve; returns the exit code."""
    from areplicate.testing.__main__ import main as serve
    from areplicate.testing.__main__ import parser

    p = parser()
    p.prog = f"areplicate {NAME}"
    p.description = _DESCRIPTION
    try:
        p.parse_args(argv)  # --help and bad options exit here, under our own name
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return serve(list(argv))
