"""What every subcommand shares: exit codes, errors a shell user can act on, the client, JSON output.

Exit codes (also listed by ``areplicate --help``):

- 0: done, everything succeeded
- 1: the prediction (or some batch items) ran and did not succeed
- 2: the command line or its files need fixing (bad reference or input, unreadable file, no token …)
- 3: the API or the network failed (rejected token, unknown model, no connection …)
- 130: interrupted with Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import enum
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
from rich.console import Console

from areplicate._client import Client
from areplicate._config import REDIS_URL_ENV, TOKEN_ENV, RateLimits
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._core.times import format_timestamp, parse_duration
from areplicate._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    InputValidationError,
    InvalidReferenceError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    ReplicateError,
)
from areplicate._models import Prediction

__all__ = [
    "EXIT_API",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "NO_PACING_ENV",
    "CLIError",
    "add_budget_arguments",
    "budget_options",
    "describe_error",
    "json_line",
    "make_client",
    "parse_assignments",
    "parse_lifetime",
    "parse_model_ref",
    "positive_int",
    "prediction_json",
    "run_main",
    "stderr",
    "stdout",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    done; everything succeeded
  1    the prediction (or some batch items) ran and did not succeed
  2    fix the command: bad arguments, model reference, input or file, or no API token
  3    the API or the network failed (rejected token, unknown model, no connection)
  130  interrupted (Ctrl-C)
"""

#: Set to 1 to switch client-side pacing off (a local fake server or proxy).
NO_PACING_ENV = "AREPLICATE_NO_PACING"


class CLIError(Exception):
    """An error to print as ``areplicate: error: <message>`` and exit with ``code``.

    For what the user can fix; the message should say how. Raised ``from None`` so no traceback
    of the internal error it replaces is printed.
    """

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        """``code`` defaults to EXIT_USAGE: a bad command line, not a failed prediction."""
        super().__init__(message)
        self.code = code


def stdout() -> Console:
    """A console on standard output (data: outputs, ids, JSON).

    No highlighting and soft wrapping, so piped output is the data exactly, never reflowed.
    """
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    """A console on standard error (progress, notes, errors).

    Keeping everything but data here is what lets ``areplicate run ... > out.json`` stay clean.
    """
    return Console(stderr=True, highlight=False, soft_wrap=True)


def parse_model_ref(text: str) -> ModelRef:
    """``parse_ref`` with its error turned into a usage error.

    The reference is checked here, before a client (or a token) is needed.
    """
    try:
        return parse_ref(text)
    except InvalidReferenceError as exc:
        raise CLIError(str(exc)) from None


def parse_lifetime(text: str | None) -> str | None:
    """Check a ``--lifetime`` value (``30s``, ``5m``, ``1h30m``, seconds; at least 5 s).

    Returns the text as given, not seconds: the client turns it into the ``Cancel-After`` header
    with the same parser, so the CLI accepts exactly what the library does.
    """
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise CLIError(f"--lifetime: {exc}") from None
    if seconds < 5:
        raise CLIError(f"--lifetime must be at least 5s (the API's minimum), got {text!r}")
    return text


def parse_value(text: str) -> Any:
    """A ``key=value`` value: JSON when it parses as JSON, otherwise the text itself.

    So ``n=4`` is the number 4 and ``seed=007`` the string ``"007"`` (not JSON); quote a value
    as JSON (``x='"4"'``) to force a string.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(pairs: Sequence[str], *, cwd: Path | None = None) -> dict[str, Any]:
    """Turn ``key=value`` arguments into an input mapping.

    Values are JSON when they parse (``steps=4`` is a number, ``tags=["a","b"]`` a list, ``x=null``
    None) and strings otherwise. ``key=@path`` is a local file (a ``pathlib.Path``, uploaded by the
    client); the file must exist and be readable. Use ``key=@@text`` for a value that starts with
    ``@``. A repeated key is an error.
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise CLIError(f"expected key=value, got {pair!r} (for example: prompt='a red fox')")
        if key in result:
            raise CLIError(f"input {key!r} is given twice")
        if raw.startswith("@@"):
            result[key] = raw[1:]
        elif raw.startswith("@"):
            path = Path(raw[1:]).expanduser()
            if cwd is not None and not path.is_absolute():
                path = cwd / path
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise CLIError(
                    f"cannot read file for input {key!r}: {exc.strerror}: {raw[1:]}"
                ) from None
            if not path.is_file():
                raise CLIError(f"input {key!r}: {raw[1:]} is not a regular file")
            result[key] = path
        else:
            result[key] = parse_value(raw)
    return result


def add_budget_arguments(p: argparse.ArgumentParser) -> None:
    """``--redis URL`` and ``--no-pacing``: how this command shares or skips the request budget.

    Read back through :func:`budget_options`, which also refuses the two together.
    """
    p.add_argument(
        "--redis",
        metavar="URL",
        help="share the request budget (pace, 429 pauses, learned limit) with every other process "
        "on this API token through Redis, e.g. redis://localhost:6379/0 "
        f"(default ${REDIS_URL_ENV}; needs pip install 'areplicate[redis]')",
    )
    p.add_argument(
        "--no-pacing",
        action="store_true",
        help="no client-side rate limits: send as fast as --concurrency allows (for a local fake "
        f"server or proxy; also {NO_PACING_ENV}=1). A 429 still pauses every request",
    )


def budget_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``make_client`` options that ``--redis`` / ``--no-pacing`` ask for.

    An empty dict leaves the Client's defaults (and ``AREPLICATE_REDIS_URL``) in charge.
    """
    redis_url = getattr(args, "redis", None)
    if getattr(args, "no_pacing", False):
        if redis_url:
            raise CLIError("--no-pacing and --redis contradict each other: pass one of them")
        return {"rate_limits": None}
    if redis_url:
        try:
            return {"rate_limits": RateLimits(shared=redis_url)}
        except ValueError as exc:
            raise CLIError(f"--redis: {exc}") from None
    return {}


def make_client(environ: Mapping[str, str] | None = None, **options: Any) -> Client:
    """A Client from the environment, or a usage error that says how to get a token.

    Pacing is on unless asked off (``rate_limits=None``, or ``AREPLICATE_NO_PACING=1``): a local
    server gets no special case, since a proxy on this machine may well front the real API.
    """
    env = os.environ if environ is None else environ
    if not env.get(TOKEN_ENV, "").strip():
        raise CLIError(
            f"no API token: set {TOKEN_ENV} (create one at https://replicate.com/account/api-tokens), "
            "or try `areplicate demo`, which needs none"
        )
    if env.get(NO_PACING_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        options.setdefault("rate_limits", None)
    try:
        return Client(environ=env, **options)
    except ValueError as exc:  # a malformed REPLICATE_BASE_URL or token; the message never shows it
        raise CLIError(str(exc)) from None
    except ImportError as exc:  # --redis without the redis extra installed
        raise CLIError(str(exc)) from None


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The message and exit code for an error that ends a command.

    Bad input or a bad reference is EXIT_USAGE (fix the command); everything the API or the
    network did is EXIT_API. An unexpected exception gets its type named, not a traceback.
    """
    if isinstance(exc, CLIError):
        return str(exc), exc.code
    if isinstance(exc, AuthenticationError):
        return (
            (
                f"the API rejected the token ({exc}); check {TOKEN_ENV}, "
                "or try `areplicate demo`, which needs none"
            ),
            EXIT_API,
        )
    if isinstance(exc, PaymentRequiredError):
        return (
            f"out of credit ({exc}); add credit at https://replicate.com/account/billing",
            EXIT_API,
        )
    if isinstance(exc, NotFoundError):
        return (
            (
                f"not found ({exc}); check the model reference (a community model needs "
                "owner/name:VERSION) or the prediction id"
            ),
            EXIT_API,
        )
    if isinstance(exc, InputValidationError | InvalidReferenceError | InvalidRequestError):
        return str(exc), EXIT_USAGE  # the input or the version: fix the command
    if isinstance(exc, APIConnectionError):
        return f"could not reach the API: {exc}", EXIT_API
    if isinstance(exc, APIError | ReplicateError):
        return str(exc), EXIT_API
    return f"{type(exc).__name__}: {exc}", EXIT_API


def _json_default(value: Any) -> Any:
    """JSON for the non-JSON values results hold: datetimes, paths (a downloaded file), enums."""
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_line(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON (datetimes as API timestamps, paths as strings).

    Compact and non-ASCII kept as is when ``indent`` is None: one result per line, as JSONL wants.
    """
    separators = None if indent else (",", ":")
    return json.dumps(
        value, default=_json_default, ensure_ascii=False, indent=indent, separators=separators
    )


def prediction_json(prediction: Prediction) -> dict[str, Any]:
    """A prediction as JSON again, unknown keys the API sent included.

    ``urls`` entries the API did not send are left out rather than written as null.
    """
    data = attrs.asdict(prediction, recurse=False)
    extra = data.pop("extra")
    urls = attrs.asdict(prediction.urls)
    urls.update(urls.pop("extra"))
    data["urls"] = {k: v for k, v in urls.items() if v is not None}
    data["status"] = str(prediction.status)
    return {**data, **extra}


T = TypeVar("T")


def run_main(
    main: Callable[[], Awaitable[T]],
    *,
    on_interrupt: Callable[[asyncio.Task[T], int], None] | None = None,
) -> T:
    """Run ``main()`` on a fresh event loop with Ctrl-C under our control.

    By default the first Ctrl-C cancels the main task (its clean-up runs, remote predictions are
    cancelled by the client) and :class:`KeyboardInterrupt` is raised afterwards. ``on_interrupt``
    replaces that: it is called with the task and the count of Ctrl-Cs so far.
    """

    async def runner() -> T:
        """Run ``main`` as a task with our SIGINT handler installed for its whole life."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(_as_coroutine(main))
        count = 0
        interrupted = False

        def handler() -> None:
            """Count a Ctrl-C and act on it: cancel the task, or tell ``on_interrupt``."""
            nonlocal count, interrupted
            count += 1
            interrupted = True
            if on_interrupt is None:
                task.cancel()
            else:
                on_interrupt(task, count)

        with _sigint(loop, handler):
            try:
                return await task
            except asyncio.CancelledError:
                if interrupted:
                    raise KeyboardInterrupt from None
                raise

    return asyncio.run(runner())


async def _as_coroutine(main: Callable[[], Awaitable[T]]) -> T:
    """``main()`` as a coroutine, since ``create_task`` refuses other awaitables."""
    return await main()


@contextlib.contextmanager
def _sigint(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> Iterator[None]:
    """Install ``handler`` for SIGINT for the duration, where the platform allows it.

    On Windows or off the main thread this does nothing, and Ctrl-C raises KeyboardInterrupt the
    usual way.
    """
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Raise a :class:`CLIError`.

    A NoReturn function, so a type checker knows the code after it is unreachable.
    """
    raise CLIError(message, code)


def print_error(message: str) -> None:
    """Print ``areplicate: error: message`` to standard error.

    Plain writes, not rich: it must work even when the error is in setting up the console.
    """
    sys.stderr.write(f"areplicate: error: {message}\n")
    sys.stderr.flush()


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
