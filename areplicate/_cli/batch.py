"""``areplicate batch [REF] inputs.jsonl --out results.jsonl``: many predictions, resumable.

With REF, each line of the inputs file is one input object for that model. Without it (a mixed
batch) each line names its own model: ``{"model": "owner/name", "input": {…}}`` (the model in any
form REF takes), and the lines of every model run in one fan-out under one request budget; each
result then names its ``"model"`` too, and the closing summary counts each model apart.

Results are appended to ``--out`` as they finish,
one JSON object a line: ``{"line": N, "id": …, "status": …, "output": …, "error": …}`` (plus
``"files"`` with ``--download``, and ``"download_error"`` when a download failed: the prediction's
result stays recorded and a re-run retries the download). ``status`` is the prediction's status,
``"error"`` when a request for it failed, or ``"invalid"`` for a line that is not a JSON object
(or, in a mixed batch, not a ``{"model", "input"}`` object with a valid reference).
When an input line appears twice (its input was edited and it ran again, or a download was
retried), the later result supersedes the earlier one.

A journal beside the output (``results.jsonl.journal``, see ``areplicate._journal``) makes a re-run
of the same command resume: lines already in the results are skipped, predictions started earlier
are re-attached by id, and a create whose response was lost (the intent is journaled, the id is not)
is looked up in ``GET /predictions`` before anything is created. The results file is the record of
what finished; the journal, of what was started. Every create error that says the prediction may
exist (``maybe_created``) takes that path within the run: looked up at once and, when not found,
looked up again after the others are done, before the line is created again.

One run at a time holds the batch (an OS lock on ``results.jsonl.lock``); a second exits 2 at
once, naming the first. A line edited since its result was written runs again; another inputs
file is refused unless ``--restart``.

Ctrl-C once stops starting new predictions, lets the creates already sent return (so their ids are
journaled), leaves running predictions running and exits 130 with a hint to re-run. Ctrl-C again,
while it stops, cancels the running predictions; a re-run then records those as canceled (nothing
is ever created twice).

The crash tests stop the process at chosen moments through an injected checkpoint (see
:data:`Checkpoint`): ``main(argv, checkpoint=...)`` hands it to the batch, which calls it right after
each intent is on disk (``"intent"``, before its create is sent) and right after each create returns
(``"created"``, before its id is journaled: the window the lookup by input exists for). The command
line never sets one.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from areplicate._cli._common import (
    EXIT_API,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CLIError,
    add_budget_arguments,
    budget_options,
    describe_error,
    json_line,
    make_client,
    parse_lifetime,
    positive_int,
    run_main,
    stderr,
)
from areplicate._cli._journal import (
    AppendOnlyFile,
    BatchLock,
    BatchLockedError,
    Journal,
    JournalError,
    input_hash,
    journal_path,
    line_hash,
    lock_path,
    replay_results,
)
from areplicate._cli._outputs import save_files
from areplicate._cli._progress import ProgressBoard, Row
from areplicate._client import Client
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._core.status import Status
from areplicate._errors import (
    APIConnectionError,
    InvalidReferenceError,
    NotFoundError,
    RateLimitError,
    ReplicateError,
    ServerError,
)
from areplicate._fanout import as_completed, stops_everything
from areplicate._ledger import matches
from areplicate._models import Prediction
from areplicate._summary import Tally

__all__ = ["Checkpoint", "execute", "register"]

#: Called as ``checkpoint(moment, n)`` at the n-th ``"intent"`` made durable and the n-th create
#: ``"created"``; a test's checkpoint may end the process there. None: no checkpoint.
Checkpoint = Callable[[str, int], None]

#: The ``Prefer: wait`` window of each create. Quick models finish inside it (one request per
#: prediction); it also bounds how long the first Ctrl-C waits for creates already sent.
_CREATE_HOLD = 5
#: How far before an intent's time a lost create is looked for (clock skew between us and the API).
_LOOKUP_MARGIN = dt.timedelta(minutes=2)
#: A found prediction dated at most this much before its intent still counts as created after it.
_SKEW_TOLERANCE = 5.0
#: A create that failed with its outcome unknown and was not found at once is looked up again no
#: sooner than this after it failed (time for a create still being processed to show up in
#: ``GET /predictions``), before the line is created again. A re-run does the same.
_SETTLE = 10.0
#: Rounds of such second lookups within one run; what is left after them is left to a re-run.
_SECOND_LOOKS = 3
_DEFAULT_CONCURRENCY = 32
#: Names a lone positional ends with when it is meant as a file, not a model (a model's name may
#: hold dots too, so only these are taken as the user's word).
_FILE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".txt")
#: The keys of a mixed batch's line.
_LINE_KEYS = ("model", "input")
#: What a mixed batch's line looks like, for its error messages.
_LINE_SHAPE = '{"model": "owner/name", "input": {...}}'

_EXAMPLES = """\
examples:
  areplicate batch black-forest-labs/flux-schnell prompts.jsonl --out results.jsonl --download images/
  areplicate batch owner/model:<64-hex version> inputs.jsonl --out results.jsonl --concurrency 64
  areplicate batch mixed.jsonl --out results.jsonl      (no REF: each line names its model)

inputs.jsonl holds one JSON object per line, e.g. {"prompt": "a llama"}; blank lines are skipped.
Without REF each line is {"model": "owner/name", "input": {"prompt": "a llama"}} (the model in
any form REF takes), every model runs in the same batch, and each result names its "model".
results.jsonl gets one line per input as it finishes:
  {"line": 3, "id": "…", "status": "succeeded", "output": …, "error": null}
status is the prediction's (succeeded, failed, canceled, aborted), "error" when a request for
it failed (e.g. a 422 for bad input), or "invalid" for a line that is not a JSON object: such a
line is reported with its number and the rest still runs. A failed --download keeps the result
and adds "download_error"; a re-run retries the download. A later line for the same input
supersedes an earlier one.

If the batch is interrupted (Ctrl-C, a crash, a lost connection), run the same command again: the
journal beside the results (results.jsonl.journal) makes it skip finished lines, re-attach to
running predictions and never create a prediction twice. Ctrl-C once leaves running predictions
running; Ctrl-C twice cancels them. Only one run at a time may use an --out (a second one exits
2). A line edited since it ran is run again; another inputs file is refused: pass --restart to
clear the old results and start over, or choose another --out.

"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``batch`` subcommand.

    Only argument syntax is checked by argparse; the files (readable inputs, a writable --out, the
    lock) are checked in :func:`execute`, so ``--help`` works anywhere.
    """
    p = subparsers.add_parser(
        "batch",
        help="run one prediction per line of a JSONL file (resumable)",
        description=(
            "Run one prediction per input line, several at once, writing results as they finish. "
            "Safe to interrupt: re-running the same command resumes without creating anything twice."
        ),
        epilog=_EXAMPLES + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "ref",
        metavar="REF",
        nargs="?",
        help=(
            "owner/name (official model), owner/name:VERSION, or VERSION; leave it out when "
            'each line names its model: {"model": REF, "input": {...}}'
        ),
    )
    p.add_argument(
        "inputs", metavar="INPUTS.jsonl", type=Path, help="one input object (or line) per line"
    )
    p.add_argument(
        "--out", "-o", metavar="RESULTS.jsonl", type=Path, required=True, help="results file"
    )
    p.add_argument(
        "--concurrency",
        "-c",
        metavar="N",
        type=positive_int,
        default=_DEFAULT_CONCURRENCY,
        help=f"predictions in flight at once (default {_DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--download", metavar="DIR", type=Path, help="save file outputs into DIR as <line>-<name>"
    )
    p.add_argument(
        "--validate",
        action="store_true",
        help="check each input against the model's schema before sending it",
    )
    p.add_argument(
        "--lifetime", metavar="DURATION", help="cancel each prediction after this long (e.g. 10m)"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help=(
            "start a fresh batch: clear the earlier results and journal of this --out "
            "(needed to run another inputs file against it)"
        ),
    )
    add_budget_arguments(p)
    p.set_defaults(handler=execute)


def execute(args: argparse.Namespace) -> int:
    """Run the ``batch`` subcommand; returns the exit code.

    Problems a user can fix (an unreadable inputs file, a missing --out directory, a batch locked
    by another run) raise CLIError before any client is made or anything is sent. The lock is held
    for the whole run and released however it ends.
    """
    inputs: Path = args.inputs
    ref = _command_line_ref(args.ref, inputs)
    lifetime = parse_lifetime(args.lifetime)
    try:
        with inputs.open("rb"):
            pass
    except OSError as exc:
        raise CLIError(f"cannot read inputs file {inputs}: {exc.strerror}") from None
    if inputs.is_dir():
        raise CLIError(f"inputs file {inputs} is a directory")
    out: Path = args.out
    if not out.parent.is_dir():
        raise CLIError(f"cannot write results to {out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise CLIError(f"--out {out} is a directory; name a file such as {out / 'results.jsonl'}")
    journal_file = journal_path(out)
    lock = _lock(out)
    try:
        return _execute_locked(args, ref, lifetime, inputs, out, journal_file)
    finally:
        lock.release()


def take_positionals(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """Place positionals argparse left over (``batch REF --out r.jsonl in.jsonl``) as REF and
    INPUTS; returns what is still unrecognized.

    REF being optional, argparse (before 3.13) gives the first chunk's lone positional to INPUTS
    and leaves the one after an option unrecognized: it is moved here, so the same command line
    means the same batch on every Python.
    """
    rest = [a for a in extra if a.startswith("-")]
    words = [a for a in extra if not a.startswith("-")]
    if args.ref is None and len(words) == 1:
        args.ref, args.inputs = str(args.inputs), Path(words[0])
        return rest
    return extra


def _command_line_ref(text: str | None, inputs: Path) -> ModelRef | None:
    """The model of a single-model batch, or None for a mixed one (no REF: one positional).

    A lone positional that is no file but reads as a model reference is most likely a REF whose
    inputs file was forgotten, and is told so rather than "no such file"; a REF that is an
    existing file, an inputs file given twice.
    """
    if text is None:
        if not inputs.exists() and inputs.suffix not in _FILE_SUFFIXES and _is_ref(str(inputs)):
            raise CLIError(
                f"no inputs file: {inputs} is not a file but reads as a model reference. Give "
                f"the inputs file after it (areplicate batch {inputs} INPUTS.jsonl --out ...), "
                'or give only an inputs file whose lines each name their model ({"model": '
                '"owner/name", "input": {...}})'
            )
        return None
    try:
        return parse_ref(text)
    except InvalidReferenceError as exc:
        if Path(text).is_file():
            raise CLIError(
                f"{text} is a file, not a model reference: give one inputs file, after the model "
                f"(areplicate batch REF {text} --out ...), or alone when each line names its "
                'model ({"model": "owner/name", "input": {...}})'
            ) from None
        raise CLIError(str(exc)) from None


def _is_ref(text: str) -> bool:
    """Whether ``text`` parses as a model reference."""
    try:
        parse_ref(text)
    except InvalidReferenceError:
        return False
    return True


def _lock(out: Path) -> BatchLock:
    """Hold the batch for this run, or fail at once naming the run that holds it.

    A second run on the same --out never waits for the first: two runs sharing a journal could
    each create the same line.
    """
    path = lock_path(out)
    try:
        return BatchLock.acquire(path)
    except BatchLockedError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot create the batch's lock file {path}: {_os_reason(exc)}") from None


def _os_reason(exc: OSError) -> str:
    """The readable part of an OSError (``strerror``), without the errno and path Python prepends."""
    return exc.strerror or str(exc)


def _execute_locked(
    args: argparse.Namespace,
    ref: ModelRef | None,
    lifetime: str | None,
    inputs: Path,
    out: Path,
    journal_file: Path,
) -> int:
    """With the lock held: clear the batch on --restart, replay its files and run it.

    A results file with no journal beside it is refused: without the journal the batch cannot tell
    which lines ran, and resuming would create them again.
    """
    if args.restart:
        try:
            out.unlink(missing_ok=True)
            journal_file.unlink(missing_ok=True)
        except OSError as exc:
            raise CLIError(f"--restart: cannot remove {exc.filename}: {_os_reason(exc)}") from None
    if out.exists() and out.stat().st_size and not journal_file.exists():
        raise CLIError(
            f"{out} already holds results but has no journal ({journal_file.name}) to resume "
            "from; pass --restart to overwrite it, or choose another --out"
        )
    client = make_client(**budget_options(args))
    opened = _open(ref, inputs, out, journal_file)
    batch = Batch(
        client,
        ref,
        inputs,
        opened,
        concurrency=args.concurrency,
        download=args.download,
        validate=args.validate,
        lifetime=lifetime,
        checkpoint=getattr(args, "checkpoint", None),
    )
    return run_main(batch.main, on_interrupt=batch.interrupt)


@attrs.frozen
class _Opened:
    """A batch's files, replayed: what earlier runs finished, started and may have lost.

    Keys are 1-based line numbers of the inputs file. ``lost`` maps lines whose create was
    journaled as an intent with no id (it may or may not have run) to their input, to look up.
    """

    journal: Journal
    results: AppendOnlyFile
    finished: dict[int, str]
    total: int
    lost: dict[int, _Line]
    changed: list[int] = attrs.field(factory=list)
    downloads: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    #: The model each finished line of a mixed batch ran on, as its result names it.
    models: dict[int, str] = attrs.field(factory=dict)


@attrs.frozen
class _Line:
    """One runnable line of the inputs file: its number, the model it runs on, its input.

    ``source`` is the line's object as read: the input itself in a single-model batch, the whole
    ``{"model", "input"}`` object in a mixed one. Its :func:`input_hash` is the line's digest
    (:func:`line_hash`), the one its intent and done records keep (so in a mixed batch the model
    is part of it).
    """

    number: int
    ref: ModelRef
    input: dict[str, Any]
    source: dict[str, Any]
    #: The line's model as a result and the summary name it (None in a single-model batch's
    #: results, which do not repeat the command line's model).
    model: str | None = None

    @property
    def label(self) -> str:
        """The model this line is counted under in the summary."""
        return str(self.ref)


def _to_line(ref: ModelRef | None, number: int, value: Any) -> _Line:
    """The line's object as a :class:`_Line`; a CLIError (the line is invalid) saying what is
    wrong with it and how to write it.

    With REF (``ref`` given) the object is the input. A line shaped as a mixed batch's (exactly
    ``model`` and an ``input`` object) is refused then, not sent as an input of REF: it would
    run, and be billed, on the wrong model.
    """
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "boolean"}.get(
            type(value), "number" if value is not None else "null"
        )
        what = "an object of input names" if ref is not None else _LINE_SHAPE
        raise CLIError(f"line {number} is a JSON {kind}, not {what}")
    if ref is not None:
        if set(value) == set(_LINE_KEYS) and isinstance(value["input"], dict):
            raise CLIError(
                f"line {number} names its own model ({json.dumps(value['model'])}), but the "
                f"command line gives {ref}: leave REF out to run each line on its own model, "
                "or make the line the input itself to run it on REF"
            )
        return _Line(number, ref, value, value)
    if "model" not in value:
        raise CLIError(
            f"line {number} names no model: without REF on the command line each line is "
            f"{_LINE_SHAPE}; to run every line on one model, give it: areplicate batch REF "
            "INPUTS.jsonl"
        )
    extra = sorted(k for k in value if k not in _LINE_KEYS)
    if extra:
        raise CLIError(
            f"line {number} has unknown key(s) {', '.join(map(repr, extra))}: a line is "
            f'{_LINE_SHAPE} (inputs go inside "input"; options such as --lifetime apply '
            "to every line)"
        )
    model, given = value["model"], value.get("input")
    if not isinstance(model, str):
        raise CLIError(
            f'line {number}: "model" must be a string such as "owner/name", not {json.dumps(model)}'
        )
    if not isinstance(given, dict):
        raise CLIError(
            f'line {number}: "input" must be an object of input names, e.g. '
            f'{{"model": {json.dumps(model)}, "input": {{"prompt": "a llama"}}}}'
        )
    try:
        line_ref = parse_ref(model)
    except InvalidReferenceError as exc:
        raise CLIError(f"line {number}: {exc}") from None
    return _Line(number, line_ref, given, value, model=str(line_ref))


def _open(ref: ModelRef | None, inputs: Path, out: Path, journal_file: Path) -> _Opened:
    """Replay the journal and the results, and read the inputs once: count them, compare each
    line that ran with the input it ran with (an edited line runs again; another file, or a line
    edited while its prediction was in flight, is refused), and pick up the inputs whose creates
    may be lost."""
    try:
        journal = Journal.open(
            journal_file, ref=None if ref is None else str(ref), inputs=inputs.resolve()
        )
    except JournalError as exc:
        raise CLIError(
            f"{exc} (delete {out} and {journal_file.name}, or pass --restart, to start over)"
        ) from None
    except OSError as exc:
        raise CLIError(
            f"cannot write the batch journal {journal_file}: {_os_reason(exc)}"
        ) from None
    try:
        try:
            data = out.read_bytes() if out.exists() else b""
            replayed, good = replay_results(data)
        except JournalError as exc:
            raise CLIError(
                f"{exc} (delete {out} and {journal_file.name}, or pass --restart, to start over)"
            ) from None
        except OSError as exc:
            raise CLIError(f"cannot read the results file {out}: {_os_reason(exc)}") from None
        finished, total, lost, changed = _compare(journal, replayed.status, inputs, ref)
        try:
            results = AppendOnlyFile(out, truncate_at=good if good < len(data) else None)
        except OSError as exc:
            raise CLIError(f"cannot write the results file {out}: {_os_reason(exc)}") from None
    except BaseException:
        journal.close()
        raise
    downloads = {n: r for n, r in replayed.downloads.items() if n in finished}
    models = {n: m for n, m in replayed.models.items() if n in finished}
    return _Opened(journal, results, finished, total, lost, changed, downloads, models)


def _compare(
    journal: Journal, results: dict[int, str], inputs: Path, ref: ModelRef | None
) -> tuple[dict[int, str], int, dict[int, _Line], list[int]]:
    """The lines still finished, the count of input lines, the lost creates' inputs, and the
    lines whose input changed since their result was written (forgotten: they run again)."""
    state = journal.state
    assert state.header is not None
    same_file = state.header.inputs == str(inputs.resolve())
    finished = dict(results)
    ran = set(finished) | set(state.intents)  # lines whose input some run used
    total = 0
    last = 0
    lost: dict[int, _Line] = {}
    mismatched: list[int] = []
    removed: set[int] = set()
    with inputs.open("rb") as f:
        for number, raw in enumerate(f, 1):
            last = number
            if not raw.strip():
                if number in ran:
                    mismatched.append(number)  # the line was emptied
                    removed.add(number)
                continue
            total += 1
            if number not in ran:
                continue
            try:
                value, digest = _parse_line(raw, number)
            except CLIError:
                value, digest = None, line_hash(raw, None)
            recorded = state.recorded_hash(number)
            if recorded is not None and recorded != digest:
                mismatched.append(number)
            elif number in state.lost:
                with contextlib.suppress(CLIError):  # not runnable: the pass reports it invalid
                    lost[number] = _to_line(ref, number, value)
    cut = sorted(n for n in ran if n > last)  # lines cut off the end
    mismatched.extend(cut)
    removed.update(cut)
    if mismatched and not same_file:
        raise CLIError(
            f"{inputs} is not the inputs file this batch was started with "
            f"({state.header.inputs}; line {mismatched[0]} differs). Pass --restart to clear the "
            "earlier results and run this file, or choose another --out"
        )
    in_flight = [n for n in mismatched if n not in finished and n in state.intents]
    if in_flight:
        raise CLIError(
            f"line {in_flight[0]} of {inputs} changed since this batch started, while its "
            "prediction was in flight; restore it and run again to finish it, or pass --restart "
            "(or another --out) to start a new batch"
        )
    for number in mismatched:
        finished.pop(number, None)
        state.forget(number)
    changed = [n for n in mismatched if n not in removed]
    return finished, total, lost, changed


class _Recorded(Exception):
    """An item that ended in an error, already written to the results.

    Raised out of the runner so the fan-out sees the item end in error, which the pass ignores:
    the result line is already written.
    """


class _Halted(Exception):
    """An item left for a re-run (the batch is stopping, or its create is unconfirmed).

    Nothing is written for it: the journal alone says what a re-run must do with the line.
    """


class _UnknownModel(Exception):
    """A mixed batch's line of a model the API said, earlier in this run, does not exist.

    Raised instead of sending its create; the message is the first such line's error.
    """


class _Unconfirmed(Exception):
    """A create failed after it may have run, and a lookup did not find its prediction yet.

    Such a line is never created again in this run before a second lookup has had time to see it.
    """


#: Errors that outlasted the client's retries and say nothing about the item itself: the API
#: cannot be reached or keeps failing, so the batch stops starting work. A 429 is not one of
#: them: it slows the batch down and never halts it (the item is tried again later).
_UNREACHABLE = (APIConnectionError, ServerError)


def _may_exist(exc: ReplicateError) -> bool:
    """Whether a failed create may have made a prediction (so it is looked up, never re-sent).

    A 5xx counts even where the session has not flagged it: the API may have processed it.
    """
    return (
        exc.maybe_created
        or isinstance(exc, ServerError)
        or (isinstance(exc, APIConnectionError) and exc.sent)
    )


class Batch:
    """One run of a batch: recovery, fan-out, results, progress and Ctrl-C.

    The order of writes is the safety: an intent is journaled before each create, the id after
    it, and a line is journaled done only once its result line is on disk. A crash between any
    two leaves the batch resumable, never a prediction made twice.
    """

    def __init__(
        self,
        client: Client,
        ref: ModelRef | None,
        inputs: Path,
        opened: _Opened,
        *,
        concurrency: int,
        download: Path | None,
        validate: bool,
        lifetime: str | None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        """Take over the replayed files of ``opened``; nothing runs until :meth:`main`.

        ``checkpoint`` is the crash tests' hook (see the module docstring); None in real runs.
        ``ref`` None makes a mixed batch: each line names its own model.
        """
        self.client = client
        self.ref = ref
        self.inputs = inputs
        self.concurrency = concurrency
        self.download = download
        self.validate = validate
        self.lifetime = lifetime
        self.console = stderr()
        self._journal = opened.journal
        self._results = opened.results
        self._finished = dict(opened.finished)
        self._model_of = dict(opened.models)
        self._total = opened.total
        self._lost = opened.lost
        self._changed = opened.changed
        self._pending_downloads = opened.downloads
        self._download_failures = len(opened.downloads)
        self._digests: dict[int, str] = {}
        #: Lines left for a second lookup (their create may exist, or was rate limited), with
        #: the monotonic time they were left at.
        self._later: dict[int, float] = {}
        #: Lines this pass must not create (a second lookup is still to decide them).
        self._hold: set[int] = set()
        self._only: set[int] | None = None
        self._checkpoint = checkpoint
        self._intents_sent = 0
        self._creates_returned = 0
        #: Models of a mixed batch the API said do not exist, with the error: their other lines
        #: are recorded as that error without a create (each would get the same 404).
        self._unknown: dict[str, str] = {}
        self._claimed = self._journal.state.claimed
        self._attached: dict[int, Prediction] = {}
        self._running: dict[int, str] = {}
        self._creating: dict[asyncio.Task[Prediction], int] = {}
        self._interrupts = 0
        self._halted: BaseException | None = None
        self._deferred = 0
        self._canceled = 0
        self._work: asyncio.Task[None] | None = None
        self._cancel_all = asyncio.Event()
        self._board = ProgressBoard(self.console)
        label = "all models" if ref is None else str(ref)
        self._tally = Tally(client, model=label)  # what this run cost, printed at its end
        before_failed = sum(1 for s in self._finished.values() if s != Status.SUCCEEDED)
        self._row: Row = self._board.add(
            label, self._total, done=len(self._finished), failed=before_failed
        )

    # -- Ctrl-C --------------------------------------------------------------------------------

    def interrupt(self, main: asyncio.Task[int], count: int) -> None:  # noqa: ARG002 - run_main's callback signature
        """SIGINT: the first stops new work, the second also cancels running predictions.

        Called from the signal handler on the loop: it only flags and cancels, and the unwinding
        happens in :meth:`main`.
        """
        self._interrupts = count
        if count == 1:
            self._board.note(
                "Stopping: no new predictions will start; running ones keep running "
                "(Ctrl-C again to cancel them)."
            )
            if self._work is not None:
                self._work.cancel()
        elif count == 2:
            self._board.note("Canceling running predictions…")
            self._cancel_all.set()

    # -- the run ------------------------------------------------------------------------------

    async def main(self) -> int:
        """Recover, run what is left, and report; returns the exit code.

        The journal and the results are closed (synced) however the run ends. After an interrupt or an
        error, creates already sent are let finish and journaled before the client closes, so their
        predictions are never lost to a re-run.
        """
        resumed = len(self._finished)
        if self._changed:
            shown = ", ".join(str(n) for n in self._changed[:10])
            more = ", …" if len(self._changed) > 10 else ""
            self.console.print(
                f"warning: {len(self._changed)} line(s) of {self.inputs} changed since their "
                f"results were written (line {shown}{more}): running them again; their new "
                f"results supersede the old ones in {self._results.path}.",
                markup=False,
            )
        if resumed or self._journal.state.created or self._lost:
            self.console.print(
                f"Resuming: {resumed} of {self._total} already done, "
                f"{self._total - resumed} left ({len(self._lost)} to look up first).",
                markup=False,
            )
        error: BaseException | None = None
        try:
            async with self.client:
                with self._board:
                    self._work = asyncio.get_running_loop().create_task(self._run())
                    if self._interrupts:
                        self._work.cancel()
                    await asyncio.wait({self._work})
                    if not self._work.cancelled():
                        error = self._work.exception()
                    if self._interrupts or self._halted is not None or error is not None:
                        await self._stop_creates()
        finally:
            await self._journal.aclose()
            await self._results.aclose()
        self._board.summary(self._tally.summary())
        if self._interrupts:
            return self._interrupted_hint()
        if self._halted is not None and error is None:
            error = self._halted
        if error is not None:
            message, code = describe_error(error)
            self.console.print(f"areplicate: error: {message}", markup=False)
            if isinstance(error, _UNREACHABLE):
                advice = (
                    "The API could not be reached or kept failing, so the batch stopped starting "
                    "work. When it answers again, run the same command again to resume"
                )
            else:
                advice = "Fix that and run the same command again to resume"
            self.console.print(
                f"{advice} ({self._row.done} of {self._total} done; nothing is created twice).",
                markup=False,
            )
            return code
        return self._summary()

    def _summary(self) -> int:
        """Print the closing line and pick the exit code of a run that was not stopped.

        A line left unconfirmed makes the exit code EXIT_API even if all others succeeded: the batch
        is not done until a re-run decides it.
        """
        row = self._row
        ok = row.done - row.failed
        self.console.print(
            f"Done: {row.done} of {self._total} ({ok} succeeded, {row.failed} did not). "
            f"Results in {self._results.path}.",
            markup=False,
        )
        if self.ref is None and self._finished:
            self.console.print(self._by_model(), markup=False)
        if self._download_failures:
            self.console.print(
                f"{self._download_failures} line(s) succeeded but their --download failed "
                "(see download_error in the results). Run the same command again to retry "
                "them (Replicate serves output files for an hour).",
                markup=False,
            )
        if self._deferred:
            self.console.print(
                f"{self._deferred} line(s) left unconfirmed: their create failed and the "
                "prediction was not found yet (or the API kept asking to slow down). Run the "
                "same command again to finish them (they are looked up before anything is "
                "created).",
                markup=False,
            )
            return EXIT_API
        ok = row.failed == 0 and row.done == self._total and not self._download_failures
        return EXIT_OK if ok else EXIT_FAILED

    def _by_model(self) -> str:
        """A mixed batch's lines done so far (this run and earlier ones), per model and status.

        A line whose model is not a string is counted as ``(no model)``; it could not run.
        """
        counts: dict[str, collections.Counter[str]] = {}
        for line, status in self._finished.items():
            model = self._model_of.get(line, "(no model)")
            counts.setdefault(model, collections.Counter())[status] += 1
        rows = []
        for model in sorted(counts):
            statuses = sorted(counts[model].items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{n} {status}" for status, n in statuses)
            rows.append(f"  {model}: {sum(counts[model].values())} ({shown})")
        return "By model, all runs:\n" + "\n".join(rows)

    def _interrupted_hint(self) -> int:
        """Tell a user who pressed Ctrl-C what is still running and how to resume."""
        if self._cancel_all.is_set():
            state = (
                f"{self._canceled} running prediction(s) canceled (a re-run records them as "
                "canceled, it does not start them again)"
            )
        else:
            state = f"{len(self._running)} prediction(s) still running remotely (not canceled)"
        self.console.print(
            f"Interrupted after {len(self._finished)} of {self._total} done; {state}.\n"
            "Run the same command again to resume: finished lines are skipped, running "
            "predictions re-attached, none created twice.",
            markup=False,
        )
        return EXIT_INTERRUPTED

    async def _run(self) -> None:
        """The whole run: pending downloads, recovery of lost creates, then passes over the inputs.

        Lines left for later get up to ``_SECOND_LOOKS`` more lookups; whatever is still unknown
        after those is counted as deferred to a re-run.
        """
        await self._retry_downloads()
        await self._recover()
        await self._pass()
        for _ in range(_SECOND_LOOKS):
            if not self._later or self._halted is not None:
                break
            await self._second_look()
        self._deferred += len(self._later)

    async def _second_look(self) -> None:
        """Look up again the lines whose create may exist (or was rate limited), once their
        creates had time to show up, and run them: attached when found, created when not (as a
        re-run would)."""
        later, self._later = self._later, {}
        await asyncio.sleep(max(0.0, max(later.values()) + _SETTLE - time.monotonic()))
        self._board.note(
            f"Looking up {len(later)} line(s) whose create may have run or was refused, before "
            "creating any of them again."
        )
        lost = self._journal.state.lost  # lines with an intent and no id: look those up
        self._lost = {n: v for n, v in (await self._read_lines(set(later))).items() if n in lost}
        self._only = set(later)
        await self._recover()
        await self._pass()

    async def _read_lines(self, numbers: set[int]) -> dict[int, _Line]:
        """The given lines, read again from the file (off the loop).

        Only lines that can still run are returned; the pass that runs the lines reports the
        others.
        """

        def read() -> dict[int, _Line]:
            found: dict[int, _Line] = {}
            with self.inputs.open("rb") as f:
                for number, raw in enumerate(f, 1):
                    if number in numbers:
                        try:
                            value, _ = _parse_line(raw, number)
                            found[number] = _to_line(self.ref, number, value)
                        except CLIError:
                            continue
            return found

        return await asyncio.to_thread(read)

    async def _pass(self) -> None:
        """One fan-out over the lines still to run (all of them, or ``self._only``)."""
        # The public fan-out with a step: its limits, budget, stop-on-fatal and cancellation rules.
        async with as_completed(
            self.client, self.step, self._items(), concurrency=self.concurrency
        ) as fan:
            async for _ in fan:
                pass  # each item is recorded and counted by its step

    async def _recover(self) -> None:
        """Find the predictions of creates whose ids were never journaled, before creating any.

        When the lookup itself fails, every such line is held back (not created) for a later
        lookup."""
        self._hold = set()
        lost, self._lost = self._lost, {}
        if not lost:
            return
        try:
            self._attached.update(await self._look_up(lost))
        except ReplicateError as exc:
            self._board.note(
                f"looking up {len(lost)} line(s) failed ({_short(str(exc))}); trying again later"
            )
            self._hold = set(lost)
            now = time.monotonic()
            self._later.update(dict.fromkeys(lost, now))

    async def _look_up(self, lost: Mapping[int, _Line]) -> dict[int, Prediction]:
        """The predictions creates for ``lost`` lines made although their responses never
        arrived: the line's own model and input, created after the line's intent (the closest in
        time), not claimed by another line. Journaled as the lines' when found.

        One scan of ``GET /predictions`` back to the oldest intent serves every line (a lookup
        per line would read the same pages once each).
        """
        intents = {line: self._journal.state.intents[line] for line in lost}
        by_input: dict[str, list[int]] = {}
        for line, item in lost.items():
            by_input.setdefault(input_hash(item.input), []).append(line)
        candidates: dict[int, list[Prediction]] = {}
        oldest = min(intent.time for intent in intents.values())
        async for prediction in self.client.predictions.list(created_after=oldest - _LOOKUP_MARGIN):
            if prediction.id in self._claimed or not isinstance(prediction.input, dict):
                continue
            try:
                key = input_hash(prediction.input)
            except (TypeError, ValueError, RecursionError):
                continue  # not an input any of our lines could have sent
            for line in by_input.get(key, ()):
                if _matches(lost[line].ref, lost[line].input, prediction):
                    candidates.setdefault(line, []).append(prediction)
        found: dict[int, Prediction] = {}
        for line in sorted(candidates):
            intent_time = intents[line].time
            for prediction in sorted(candidates[line], key=lambda p: _distance(p, intent_time)):
                if prediction.id not in self._claimed:
                    self._claimed.add(prediction.id)
                    await self._journal.record_created(line, prediction.id)
                    found[line] = prediction
                    break
        return found

    async def _items(self) -> AsyncIterator[_Line]:
        """The inputs still to run; bad lines are written to the results on the way.

        The file is read lazily, one line per free fan-out slot, so a huge inputs file is never held
        in memory. Finished and held lines are skipped without being parsed.
        """
        only = self._only
        with self.inputs.open("rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip() or number in self._finished or number in self._hold:
                    continue
                if only is not None and number not in only:
                    continue
                try:
                    value, digest = _parse_line(raw, number)
                except CLIError as exc:
                    await self._record_invalid(number, str(exc), line_hash(raw, None), None)
                    continue
                try:
                    item = _to_line(self.ref, number, value)
                except CLIError as exc:
                    named = value.get("model") if isinstance(value, dict) else None
                    model = named if isinstance(named, str) and self.ref is None else None
                    await self._record_invalid(number, str(exc), digest, model)
                    continue
                self._digests[number] = digest
                yield item

    async def step(self, client: Client, line: _Line) -> Prediction:
        """One line: attach or create, wait, download, record. Runs inside the fan-out.

        Everything it needs is the line (its number, model and input) and the batch's state, so
        it is the whole per-item work of a fan-out step. An error the client's retries could not
        get past (the network, a 5xx) halts the batch and leaves the item to a re-run, which
        loses nothing: its id is journaled (the re-run re-attaches), or its intent is (the
        re-run looks the prediction up first). A create that failed after it may have run, and
        whose prediction a lookup cannot find yet, and an item the API kept rate limiting, are
        left for a second look at the end of this run; the batch goes on.
        """
        number = line.number
        self._row.started()
        pid: str | None = self._journal.state.created.get(number)
        try:
            try:
                prediction = await self._start(client, line, pid)
            except (_Unconfirmed, RateLimitError) as exc:
                raise self._later_look(number, exc) from exc
            except _UNREACHABLE as exc:
                raise self._halt(exc) from exc
            pid = prediction.id
            self._running[number] = pid
            try:
                final = await client.predictions.wait(prediction, cancel_on_exit=False)
            except RateLimitError as exc:
                raise self._later_look(number, exc) from exc
            except _UNREACHABLE as exc:
                raise self._halt(exc) from exc
            files: list[Path] | None = None
            failure: tuple[str, bool] | None = None
            if self.download is not None and final.status == Status.SUCCEEDED:
                files, failure = await self._download(number, final.output, overwrite=False)
            await self._record(line, final, files, failure)
            return final
        except (asyncio.CancelledError, _Halted):
            self._row.stopped()
            raise
        except OSError as exc:
            # Not the API's (the client wraps its network errors): the journal or the results
            # cannot be written, e.g. a full disk. Nothing more can be recorded: stop.
            self._row.stopped()
            raise self._halt(
                CLIError(
                    f"cannot write the batch's files ({self._results.path}, "
                    f"{self._journal.path}): {exc.strerror or exc}"
                )
            ) from exc
        except Exception as exc:
            unknown_model = self.ref is None and isinstance(exc, NotFoundError)
            if stops_everything(exc) and not unknown_model:
                # A 401, 402, or the one model of the batch unknown: every line would get it.
                self._row.stopped()
                raise
            if isinstance(exc, _UnknownModel):
                message = str(exc)
            elif unknown_model and stops_everything(exc):
                # One model of a mixed batch: its lines fail, the other models' go on.
                message = (
                    f"model {line.ref} was not found ({exc}); check the line's model (a "
                    "community model needs owner/name:VERSION): an edited line runs again"
                )
                self._unknown.setdefault(line.label, message)
            else:
                message = str(exc) or type(exc).__name__
            await self._write_result(
                number,
                self._result(
                    line, {"id": pid, "status": "error", "output": None, "error": message}
                ),
                self._digests.pop(number, None),
            )
            self._tally.count(line.label, "error")
            self._row.finished(False, f"line {number}: error: {_short(message)}")
            raise _Recorded(message) from exc

    async def _start(self, client: Client, line: _Line, pid: str | None) -> Prediction:
        """The item's prediction: found by a lookup, fetched by its journaled id, or created.

        A journaled id that the API no longer knows is an error for that line, not a reason to create
        it again: the earlier prediction may have been billed. A line of a model already found
        unknown in this run is not sent (see :class:`_UnknownModel`).
        """
        prediction = self._attached.pop(line.number, None)
        if prediction is not None:
            return prediction
        if pid is None:
            unknown = self._unknown.get(line.label)
            if unknown is not None:
                raise _UnknownModel(unknown)
            return await self._create(client, line)
        try:
            return await client.predictions.get(pid)
        except NotFoundError:
            raise ReplicateError(
                f"prediction {pid}, started by an earlier run, was not found"
            ) from None

    def _later_look(self, line: int, exc: BaseException) -> _Halted:
        """Leave ``line`` for the second look at the end of this run.

        Returns (does not raise) the :class:`_Halted` the runner raises to end the item unrecorded.
        """
        self._later[line] = time.monotonic()
        self._running.pop(line, None)
        self._digests.pop(line, None)
        self._board.note(f"line {line}: trying again later: {_short(str(exc))}")
        return _Halted()

    def _halt(self, exc: BaseException) -> _Halted:
        """Stop starting new work because the API cannot be reached; the first cause is kept.

        Running predictions are not cancelled: a re-run re-attaches to them.
        """
        if self._halted is None:
            self._halted = exc
            self._board.note(
                f"Stopping: {exc}. No new predictions will start; running ones keep running."
            )
            if self._work is not None:
                self._work.cancel()
        return _Halted()

    async def _create(self, client: Client, line: _Line) -> Prediction:
        """Journal the intent, create, journal the id: in a task of its own, so a Ctrl-C that
        cancels the item still lets a create that was sent come back and be journaled."""
        task = asyncio.get_running_loop().create_task(self._create_durably(client, line))
        self._creating[task] = line.number
        task.add_done_callback(_settled)
        task.add_done_callback(lambda t: self._creating.pop(t, None))
        return await asyncio.shield(task)

    async def _create_durably(self, client: Client, item: _Line) -> Prediction:
        """Journal the intent, send the create, journal the returned id.

        A failure after which the prediction may exist raises :class:`_Unconfirmed` (the line is looked
        up later, never re-sent). The checkpoint is called right after the intent and after the
        create, the two points a crash-safety test must hit.
        """
        line = item.number
        await self._journal.record_intent(line, item.source, model=item.model)
        self._intents_sent += 1
        if self._checkpoint is not None:
            self._checkpoint("intent", self._intents_sent)
        try:
            prediction = await client.predictions.create(
                str(item.ref),
                item.input,
                hold=_CREATE_HOLD,
                lifetime=self.lifetime,
                validate=self.validate,
            )
        except ReplicateError as exc:
            if not _may_exist(exc):
                raise
            # The create may have run (a 5xx, an unreadable answer, the response lost on the
            # way back): it is looked up, never sent again. The lookup waits for the end of this
            # pass (one scan serves every such line), when it has had time to show up.
            raise _Unconfirmed(f"the create may have run: {exc}") from exc
        self._creates_returned += 1
        if self._checkpoint is not None:
            self._checkpoint("created", self._creates_returned)
        self._claimed.add(prediction.id)
        self._running[line] = prediction.id
        await self._journal.record_created(line, prediction.id)
        return prediction

    async def _stop_creates(self) -> None:
        """After a Ctrl-C or a fatal error: let sent creates return and be journaled, unless a
        second Ctrl-C asks to cancel everything."""
        if not self._cancel_all.is_set():
            canceled = asyncio.ensure_future(self._cancel_all.wait())
            try:
                while not self._cancel_all.is_set() and (
                    pending := {t for t in self._creating if not t.done()}
                ):
                    await asyncio.wait({*pending, canceled}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                canceled.cancel()
        if self._cancel_all.is_set():
            creating = dict(self._creating)
            for task in creating:
                task.cancel()  # the client finds and cancels whatever such a create started
            await asyncio.gather(*creating, return_exceptions=True)
            # A create cut short leaves its intent without an id: a re-run looks it up and
            # reports whatever it became (canceled by the client's clean-up), creating nothing.
            self._canceled += sum(1 for task in creating if task.cancelled())
            await asyncio.gather(
                *(self._cancel_remote(line, pid) for line, pid in list(self._running.items()))
            )

    async def _cancel_remote(self, line: int, pid: str) -> None:
        """Cancel one running prediction on a second Ctrl-C; a failure is noted, not raised.

        The journal is not touched: a re-run re-attaches by id and records how the prediction ended.
        """
        try:
            prediction = await self.client.predictions.cancel(pid)
        except ReplicateError as exc:
            self._board.note(f"could not cancel {pid} (line {line}): {exc}")
            return
        if prediction.status in (Status.CANCELED, Status.ABORTED):
            self._canceled += 1
        # Either way a re-run re-attaches by id and records how it ended.

    # -- results ------------------------------------------------------------------------------

    async def _download(
        self, line: int, output: Any, *, overwrite: bool
    ) -> tuple[list[Path], tuple[str, bool] | None]:
        """Save the line's file outputs: the paths, and on failure (message, gone for good).

        "Gone for good" (a 404, a malformed data URI) is kept in the result so re-runs stop trying;
        any other failure is retried by the next run. Never raises for a download.
        """
        assert self.download is not None
        try:
            files = await save_files(
                self.client, output, self.download, prefix=f"{line}-", overwrite=overwrite
            )
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the line; the kind decides retry
            # A file Replicate no longer serves (deleted after the hour) or a malformed data URI
            # will never download; a full disk, a network error or a 5xx may pass.
            gone = isinstance(exc, NotFoundError | ValueError)
            message = str(exc) or type(exc).__name__
            self._board.note(f"line {line}: download failed: {_short(message)}")
            return [], (message, gone)
        return files, None

    async def _retry_downloads(self) -> None:
        """Download again the files of lines that succeeded while their download failed.

        Without --download this run only says how many wait; the results keep their download_error.
        The rewritten result line supersedes the old one (a later line for a line number wins).
        """
        pending = sorted(self._pending_downloads.items())
        if not pending:
            return
        if self.download is None:
            self._board.note(
                f"{len(pending)} line(s) have failed downloads: pass --download DIR to retry them"
            )
            return
        for line, result in pending:
            files, failure = await self._download(line, result.get("output"), overwrite=True)
            retried = {
                k: v
                for k, v in result.items()
                if k not in ("line", "files", "download_error", "download_gone")
            }
            self._download_failures -= 1
            self._add_download(retried, files, failure)
            await self._write_result(line, retried, self._journal.state.done.get(line))

    def _add_download(
        self, result: dict[str, Any], files: list[Path] | None, failure: tuple[str, bool] | None
    ) -> None:
        """Add the download's outcome (``files``, or ``download_error``) to a result about to be written."""
        if files is not None:
            result["files"] = [str(p) for p in files]
        if failure is not None:
            result["download_error"], gone = failure
            if gone:
                result["download_gone"] = True  # a re-run does not try again
            self._download_failures += 1

    def _result(self, line: _Line | None, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` as a results line holds it: in a mixed batch, naming the line's model first."""
        if self.ref is None:
            return {"model": None if line is None else line.model, **result}
        return result

    async def _record(
        self,
        item: _Line,
        prediction: Prediction,
        files: list[Path] | None,
        failure: tuple[str, bool] | None = None,
    ) -> None:
        """Write the terminal prediction's result line and count it on the progress board.

        Any terminal status is a result (failed and canceled too); only the status tells them apart.
        """
        line = item.number
        result = self._result(
            item,
            {
                "id": prediction.id,
                "status": str(prediction.status),
                "output": prediction.output,
                "error": prediction.error,
            },
        )
        self._add_download(result, files, failure)
        await self._write_result(line, result, self._digests.pop(line, None))
        self._tally.add(prediction, model=item.label)
        text = f"line {line}: {prediction.status} {prediction.id}"
        if prediction.error:
            text += f": {_short(prediction.error)}"
        elif failure is not None:
            text += f" (download failed: {_short(failure[0])})"
        self._row.finished(prediction.status == Status.SUCCEEDED, text)

    async def _record_invalid(
        self, line: int, message: str, digest: str, model: str | None
    ) -> None:
        """Write the result of a line that cannot run (status ``invalid``); it never ran.

        ``model`` is what a mixed batch's line gave as its model, if a string: the result and
        the summary name it (else the line counts under the batch's label).
        """
        result = {"id": None, "status": "invalid", "output": None, "error": message}
        if self.ref is None:
            result = {"model": model, **result}
        await self._write_result(line, result, digest)
        label = str(self.ref) if self.ref is not None else (model or "(no model)")
        self._tally.count(label, "invalid")
        self._row.finished(False, f"line {line}: invalid: {message}", was_in_flight=False)

    async def _write_result(self, line: int, result: dict[str, Any], digest: str | None) -> None:
        """Append the result line (durably), then journal the line as done.

        In that order: a crash in between leaves a result with no done mark, and the re-run writes the
        line again (a later line supersedes), rather than a done mark with no result.
        """
        seq = self._results.write((json_line({"line": line, **result}) + "\n").encode())
        self._finished[line] = str(result["status"])
        model = result.get("model")
        if self.ref is None and isinstance(model, str):
            self._model_of[line] = model
        else:
            self._model_of.pop(line, None)
        self._running.pop(line, None)
        await self._results.sync(seq)
        await self._journal.record_done(line, digest)


def _matches(ref: ModelRef, value: dict[str, Any], prediction: Prediction) -> bool:
    """Whether ``prediction`` is what a create of ``value`` on ``ref`` would have made (the test
    ``predictions.find`` applies)."""
    return matches(prediction, model=ref.model, version=ref.version, deployment=None, input=value)


def _distance(prediction: Prediction, intent: dt.datetime) -> tuple[int, float]:
    """How well a found prediction fits an intent: the closest in time among those created after
    it (a create is sent after its intent is written; a few seconds' clock skew allowed), then
    the closest of the older ones; undated last."""
    if prediction.created_at is None:
        return (2, 0.0)
    delta = (prediction.created_at - intent).total_seconds()
    return (0 if delta >= -_SKEW_TOLERANCE else 1, abs(delta))


def _settled(task: asyncio.Task[Prediction]) -> None:
    """Mark a create's outcome as seen (its runner may have been cancelled and gone).

    Without this asyncio would log "Task exception was never retrieved" for a create whose
    caller was cancelled by a Ctrl-C while the shielded create went on.
    """
    if not task.cancelled():
        task.exception()


def _parse_line(raw: bytes, number: int) -> tuple[Any, str]:
    """The line's JSON value and its :func:`line_hash`; a CLIError naming the line when it cannot
    be read (bad JSON, or nested too deeply for Python: such a line is reported as invalid, like
    any malformed one, and the rest runs)."""
    try:
        value = json.loads(raw)
        return value, line_hash(raw, value)  # hashing writes it out again: deep too
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CLIError(f"line {number} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CLIError(
            f"line {number} is nested too deeply to read ({len(raw)} bytes of nested JSON); "
            "inputs are a few levels deep"
        ) from None


def _short(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis, for progress notes."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
