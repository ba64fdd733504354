"""The batch journal: what a resumed ``areplicate batch`` needs to create nothing twice.

An append-only JSON-lines file beside the results (``results.jsonl.journal``). Each record is one
line, fsynced before the step that depends on it:

- ``batch``: the first line; the model reference (null for a mixed batch, whose lines each name
  their model) and the inputs file, so a re-run of a *different* command against the same output
  is refused instead of mixing two batches.
- ``intent`` (line, line hash, time; in a mixed batch also the line's model): written and fsynced
  **before** the create is sent. A re-run that finds an intent without an id knows the create may
  have reached the API and looks the prediction up (same model, same input, created after the
  intent) instead of creating it again. The hash is :func:`line_hash`'s of the whole line, so in a
  mixed batch it covers the line's model too: a line whose model was edited counts as edited.
- ``created`` (line, prediction id): right after the create returns; a re-run re-attaches by id.
- ``done`` (line, input hash): after the item's result line is written (and fsynced) to the
  results file. The hash lets a re-run notice a line edited since: it runs again and its new
  result supersedes the old one (in the results file, the last line for an input wins).

A new ``intent`` for a line starts that line afresh: the ``created`` and ``done`` before it no
longer count (the ids stay claimed, so a lookup never hands an old prediction to another line).

One run at a time: :class:`BatchLock` holds an OS lock on ``results.jsonl.lock`` (which names the
process holding it) for the whole run, so two runs on the same output never both create.

A crash can tear the last line only (each record is a single ``write``): replay drops a last line
that does not parse and truncates it away before appending. Anything else that does not parse
strictly (an unknown record type, an unknown key, a wrong type) is damage, reported with its line
number. Appends go through :class:`AppendOnlyFile`, whose fsyncs run in a thread and are shared by
every record written meanwhile (group commit), so a batch of thousands is not one fsync per step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from areplicate._core.times import format_timestamp, parse_timestamp

__all__ = [
    "JOURNAL_SUFFIX",
    "LOCK_SUFFIX",
    "AppendOnlyFile",
    "BatchLock",
    "BatchLockedError",
    "BatchRecord",
    "CreatedRecord",
    "DoneRecord",
    "IntentRecord",
    "Journal",
    "JournalError",
    "JournalState",
    "Record",
    "ResultsState",
    "encode_record",
    "input_hash",
    "journal_path",
    "line_hash",
    "lock_path",
    "parse_records",
    "parse_results",
    "replay_results",
]

#: The journal sits beside the results file: ``results.jsonl`` → ``results.jsonl.journal``.
JOURNAL_SUFFIX = ".journal"
#: The lock beside the results file: ``results.jsonl`` → ``results.jsonl.lock``.
LOCK_SUFFIX = ".lock"
#: The format of the records below; a journal of another version is refused.
JOURNAL_VERSION = 3
#: Versions this one reads (version 1 had no input hash in ``done`` records; versions 1 and 2 have
#: no mixed batches: their header always names a model).
_READABLE_VERSIONS = (1, 2, 3)
#: How a mixed batch (each line names its own model) is named in messages.
MIXED = "mixed models (each line names its model)"


class JournalError(Exception):
    """The journal cannot be used: damaged, of another batch, or of another format version."""


# -- records ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BatchRecord:
    """The journal's first line: which batch this is (``ref`` None: a mixed batch, each line
    names its own model)."""

    type: Literal["batch"] = "batch"

    ref: str | None
    inputs: str
    time: dt.datetime
    version: int = JOURNAL_VERSION


@attrs.frozen(kw_only=True)
class IntentRecord:
    """A create for input ``line`` is about to be sent (fsynced before sending).

    ``model`` is the line's own model in a mixed batch (None, and not written, otherwise); it is
    for a person reading the journal: the hash already covers it.
    """

    type: Literal["intent"] = "intent"

    line: int
    input_sha256: str
    time: dt.datetime
    model: str | None = None


@attrs.frozen(kw_only=True)
class CreatedRecord:
    """The create for input ``line`` returned prediction ``id``."""

    type: Literal["created"] = "created"

    line: int
    id: str


@attrs.frozen(kw_only=True)
class DoneRecord:
    """The result of input ``line`` is in the results file; ``input_sha256`` is the hash of the
    line it was the result of (:func:`line_hash`; absent in version-1 journals)."""

    type: Literal["done"] = "done"

    line: int
    input_sha256: str | None = None


Record = BatchRecord | IntentRecord | CreatedRecord | DoneRecord
_RECORD_TYPES: dict[str, type[Any]] = {
    "batch": BatchRecord,
    "intent": IntentRecord,
    "created": CreatedRecord,
    "done": DoneRecord,
}


def _strict_int(value: Any, _: Any) -> int:
    """An integer field of a record; ``true`` is refused although Python counts it as ``1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_str(value: Any, _: Any) -> str:
    """A string field of a record; no conversion, so a number where an id belongs is damage."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_time(value: Any, _: Any) -> dt.datetime:
    """A record's timestamp: a string in the format :func:`format_timestamp` writes."""
    if not isinstance(value, str):
        raise TypeError(f"expected a timestamp string, got {type(value).__name__}")
    return parse_timestamp(value)


def _make_strict_converter() -> cattrs.Converter:
    """A converter for our own files: unknown keys, missing keys and wrong types are all errors.

    (``_convert.converter`` is lenient on purpose, for API responses; this one is its strict twin.)
    """
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(dt.datetime, _strict_time)
    conv.register_unstructure_hook(dt.datetime, format_timestamp)
    for cls in _RECORD_TYPES.values():
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
        )
    # A single-model batch's intents stay as they were (no ``"model": null`` on every line).
    conv.register_unstructure_hook(
        IntentRecord,
        make_dict_unstructure_fn(IntentRecord, conv, model=override(omit_if_default=True)),
    )
    return conv


_converter = _make_strict_converter()


def _structure_record(data: Any) -> Record:
    """One parsed JSON line as the record its ``type`` names.

    Errors are ``ValueError``/``TypeError`` with cattrs' paths flattened into one message, so
    :func:`_replay` can tell a torn last line from damage and name the line.
    """
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    cls = _RECORD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown record type {kind!r}")
    try:
        record: Record = _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc))) from None
    return record


def encode_record(record: Record) -> bytes:
    """One record as a journal line (compact JSON and a newline).

    A line is written with a single ``write``, so a crash tears at most the last one; keeping
    it compact keeps that write small. Non-ASCII text is written as UTF-8, not escaped.
    """
    data = _converter.unstructure(record)
    return (json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


T = TypeVar("T")


def _replay(data: bytes, parse: Callable[[bytes], T], what: str) -> tuple[list[T], int]:
    """Parse each line of an append-only file; a torn (incomplete or unparsable) last line is
    dropped. Returns the parsed lines and the byte length they cover."""
    items: list[T] = []
    good = 0
    number = 0
    while good < len(data):
        number += 1
        end = data.find(b"\n", good)
        if end == -1:
            break  # a crash mid-write leaves the last line without its newline: drop it
        try:
            items.append(parse(data[good:end]))
        except (ValueError, TypeError, KeyError) as exc:  # JSON and Unicode errors are ValueErrors
            if end == len(data) - 1:
                break  # the last line, complete but garbled: torn as well
            raise JournalError(f"{what} line {number} is damaged: {exc}") from None
        good = end + 1
    return items, good


def _parse_record_line(line: bytes) -> Record:
    """Parse one journal line (without its newline) into a record."""
    return _structure_record(json.loads(line))


def parse_records(data: bytes) -> tuple[list[Record], int]:
    """Replay a journal's bytes: the records and the length of the part that parsed.

    The last line may be torn (a crash mid-write): when it is incomplete or does not parse it is
    dropped, and the returned length stops before it (truncate the file there before appending).
    Any earlier line that does not parse raises JournalError naming its line number.
    """
    return _replay(data, _parse_record_line, "journal")


def _parse_result_line(line: bytes) -> tuple[int, str, dict[str, Any] | None, str | None]:
    """One results line as ``(input line, status, result to retry or None, model or None)``.

    The model is a mixed batch's result's ``"model"`` (None when absent or not a string).

    Only ``line`` and ``status`` are read strictly: the rest of a result is whatever the model
    returned. A result is kept for retrying when its download failed for a reason other than the
    file being gone (a 404/410 will not get better on a re-run).
    """
    value = json.loads(line)
    number, status = value["line"], value["status"]
    if isinstance(number, bool) or not isinstance(number, int) or not isinstance(status, str):
        raise TypeError("'line' must be an integer and 'status' a string")
    retry = value.get("download_error") is not None and not value.get("download_gone")
    model = value.get("model")
    return number, status, value if retry else None, model if isinstance(model, str) else None


@attrs.define
class ResultsState:
    """What a results file says, line by line (the last result of an input line wins).

    ``status`` maps each input line to its recorded status; ``downloads`` holds the whole result
    of each line whose prediction succeeded but whose ``--download`` failed and may be retried;
    ``models`` the model each result of a mixed batch names.
    """

    status: dict[int, str] = attrs.field(factory=dict)
    downloads: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    models: dict[int, str] = attrs.field(factory=dict)


def replay_results(data: bytes) -> tuple[ResultsState, int]:
    """Replay a results file: its :class:`ResultsState`, and the length that parsed.

    Like :func:`parse_records`, a torn last line is dropped (truncate the file there before
    appending); an earlier line that is not a result object raises JournalError.
    """
    items, good = _replay(data, _parse_result_line, "results")
    state = ResultsState()
    for number, status, retry, model in items:
        state.status[number] = status
        if model is None:
            state.models.pop(number, None)
        else:
            state.models[number] = model
        if retry is None:
            state.downloads.pop(number, None)
        else:
            state.downloads[number] = retry
    return state, good


def parse_results(data: bytes) -> tuple[dict[int, str], int]:
    """Each input line's recorded status (the last one wins), and the length that parsed."""
    state, good = replay_results(data)
    return state.status, good


def input_hash(value: Mapping[str, Any]) -> str:
    """A stable digest of one input (canonical JSON), to notice an inputs file that changed.

    Key order and spacing do not change it; a change of JSON type does: ``1`` and ``1.0`` hash
    differently, as they may mean different things to a model. The same function must be used
    when writing and when comparing, or every line looks edited.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def line_hash(raw: bytes, value: Any) -> str:
    """The digest a ``done`` record keeps of its inputs line: :func:`input_hash` of the input
    object it holds (so key order and spacing do not count as a change), or of the raw bytes of a
    line that is not an input object."""
    if isinstance(value, dict):
        return input_hash(value)
    return "raw:" + hashlib.sha256(raw.strip()).hexdigest()


def journal_path(results: Path) -> Path:
    """Where the journal of a batch writing ``results`` lives."""
    return results.with_name(results.name + JOURNAL_SUFFIX)


def lock_path(results: Path) -> Path:
    """Where the lock of a batch writing ``results`` lives."""
    return results.with_name(results.name + LOCK_SUFFIX)


# -- state --------------------------------------------------------------------------------------


@attrs.define
class JournalState:
    """What the records say, line by line (input line numbers start at 1).

    ``intents`` maps a line to its latest intent, ``created`` to the id its create returned (or a
    lookup found), ``done`` to the :func:`line_hash` of the line whose result was written (None
    when a version-1 journal did not record it). A new intent for a line forgets its earlier
    ``created`` and ``done``: the line is being run again.
    """

    header: BatchRecord | None = None
    intents: dict[int, IntentRecord] = attrs.field(factory=dict)
    created: dict[int, str] = attrs.field(factory=dict)
    done: dict[int, str | None] = attrs.field(factory=dict)
    _ids: set[str] = attrs.field(factory=set)

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> JournalState:
        """Fold records into state; a record that contradicts the ones before it is damage."""
        state = cls()
        for record in records:
            state.apply(record)
        return state

    def apply(self, record: Record) -> None:
        """Fold one record in."""
        if isinstance(record, BatchRecord):
            if self.header is not None:
                raise JournalError("journal holds two batch headers")
            self.header = record
        elif self.header is None:
            raise JournalError("journal does not start with a batch header")
        elif isinstance(record, IntentRecord):
            self.intents[record.line] = record
            self.created.pop(record.line, None)
            self.done.pop(record.line, None)
        elif isinstance(record, CreatedRecord):
            self.created[record.line] = record.id
            self._ids.add(record.id)
        else:
            self.done[record.line] = record.input_sha256

    def forget(self, line: int) -> None:
        """Treat ``line`` as never run (its input changed); its ids stay claimed.

        Only the in-memory state changes: the journal on disk forgets nothing until the line's
        new intent is written, so a crash in between replays to the old state and is noticed
        again as an edited line.
        """
        self.intents.pop(line, None)
        self.created.pop(line, None)
        self.done.pop(line, None)

    def recorded_hash(self, line: int) -> str | None:
        """The hash of the input ``line`` last ran with, if the journal knows it.

        The ``done`` record's hash when there is one, else the latest intent's: a line that was
        started but never finished still counts as run with that input.
        """
        digest = self.done.get(line)
        if digest is None and line in self.intents:
            digest = self.intents[line].input_sha256
        return digest

    @property
    def claimed(self) -> set[str]:
        """Prediction ids any line ever owned (a lookup must not hand them to another line)."""
        return set(self._ids)

    @property
    def lost(self) -> set[int]:
        """Lines whose create may have been sent but whose id was never journaled."""
        return {line for line in self.intents if line not in self.created and line not in self.done}


# -- durable appends ----------------------------------------------------------------------------


class AppendOnlyFile:
    """A file opened for appending whose writes are made durable by shared (group-commit) fsyncs.

    :meth:`write` hands bytes to the OS at once (they survive the process being killed);
    ``await sync(n)`` returns once write number ``n`` is on disk (it survives a power cut). While
    one fsync runs in a worker thread, later writes wait for the next one, which covers them all.
    """

    def __init__(self, path: Path, *, truncate_at: int | None = None) -> None:
        """Open (or create) ``path`` for appending, cutting it to ``truncate_at`` bytes first if given.

        ``truncate_at`` is how a torn last line is removed before new records go after it. A newly
        created file also has its directory fsynced: otherwise a power cut can lose the file itself
        even though its contents were synced.
        """
        self.path = path
        existed = path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if truncate_at is not None:
            os.ftruncate(self._fd, truncate_at)
        if not existed:
            _fsync_directory(path.parent)
        self._written = 0
        self._synced = 0
        self._pending: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> int:
        """Append ``data`` in one write; returns its number for :meth:`sync`."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._written += 1
        return self._written

    async def sync(self, upto: int | None = None) -> None:
        """Wait until write ``upto`` (default: every write so far) is on disk."""
        target = self._written if upto is None else upto
        while self._synced < target:
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._fsync(self._written))
            await asyncio.shield(self._pending)

    async def _fsync(self, covers: int) -> None:
        """One fsync in a worker thread, covering writes up to number ``covers``.

        ``covers`` is taken when the fsync starts, not when it ends: writes made while it runs are
        not known to be on disk and wait for the next one.
        """
        try:
            await asyncio.to_thread(os.fsync, self._fd)
            self._synced = max(self._synced, covers)
        finally:
            self._pending = None

    async def aclose(self) -> None:
        """Sync what was written and close the file."""
        if self._fd < 0:
            return
        await self.sync()
        os.close(self._fd)
        self._fd = -1

    def sync_now(self) -> None:
        """Make every write so far durable, blocking (for a single write before the run starts)."""
        os.fsync(self._fd)
        self._synced = self._written

    def close(self) -> None:
        """Close the file at once, without waiting for a sync (when giving up on it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable (POSIX only; best effort elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the journal --------------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    """The journal's default clock: now, timezone-aware in UTC (records store UTC timestamps)."""
    return dt.datetime.now(dt.timezone.utc)


class Journal:
    """The journal of one batch: replayed on open, then appended to as the batch runs.

    Open it with :meth:`open`; ``state`` is what earlier runs recorded (plus what this run adds).
    Every ``record_*`` method returns once its record is on disk.
    """

    def __init__(
        self, file: AppendOnlyFile, state: JournalState, clock: Callable[[], dt.datetime]
    ) -> None:
        """Wrap an open file and its replayed state; use :meth:`open`, which does the replay."""
        self._file = file
        self.state = state
        self._clock = clock

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._file.path

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        ref: str | None,
        inputs: Path,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> Journal:
        """Replay ``path`` (creating it if absent) for a batch of ``ref`` over ``inputs``
        (``ref`` None: a mixed batch, each line naming its model).

        Raises JournalError when the file is damaged, or belongs to a batch of another model (a
        mixed batch's journal is refused to a single-model run, and the other way round).
        """
        data = path.read_bytes() if path.exists() else b""
        records, good = parse_records(data)
        state = JournalState.from_records(records)
        header = state.header
        if header is not None:
            if header.version not in _READABLE_VERSIONS:
                raise JournalError(
                    f"{path} was written by another version of areplicate (format "
                    f"{header.version}, this one reads {JOURNAL_VERSION})"
                )
            if header.ref is None and header.version < 3:
                raise JournalError(f"{path} is damaged: its header names no model")
            if header.ref is None and ref is not None:
                raise JournalError(
                    f"{path} belongs to a batch of {MIXED}, not of {ref}: run it as it was "
                    "started, without a model on the command line (areplicate batch INPUTS.jsonl "
                    "--out ...); or use another --out (or --restart to throw the old results away)"
                )
            if ref is None and header.ref is not None:
                raise JournalError(
                    f"{path} belongs to a batch of {header.ref}, not of {MIXED}: run it as it was "
                    f"started (areplicate batch {header.ref} INPUTS.jsonl --out ...); or use "
                    "another --out (or --restart to throw the old results away)"
                )
            if header.ref != ref:
                raise JournalError(
                    f"{path} belongs to a batch of {header.ref}, not {ref}; use another --out "
                    "(or --restart to throw the old results away)"
                )
        file = AppendOnlyFile(path, truncate_at=good if good < len(data) else None)
        journal = cls(file, state, clock)
        if header is None:
            record = BatchRecord(ref=ref, inputs=str(inputs), time=clock())
            try:
                file.write(encode_record(record))
                file.sync_now()  # a full disk shows here, before any create is sent
            except BaseException:
                file.close()
                raise
            state.apply(record)
        return journal

    def _append(self, record: Record) -> int:
        """Fold ``record`` into the state and write it; returns the write number to sync on.

        The state is updated before the record is durable: callers await the sync before acting on
        the step (sending the create), so nothing outside this process can see the difference.
        """
        self.state.apply(record)
        return self._file.write(encode_record(record))

    async def record_intent(
        self, line: int, value: Mapping[str, Any], *, model: str | None = None
    ) -> IntentRecord:
        """Journal that the create for ``line`` is about to be sent; returns once it is durable.

        ``value`` is the line's object as read (what :func:`line_hash` hashes: the input, or in a
        mixed batch the whole ``{"model", "input"}`` line); ``model`` the mixed line's model.
        """
        record = IntentRecord(
            line=line, input_sha256=input_hash(value), time=self._clock(), model=model
        )
        await self._file.sync(self._append(record))
        return record

    async def record_created(self, line: int, prediction_id: str) -> None:
        """Journal the id a create returned (or a lookup found) for ``line``."""
        await self._file.sync(self._append(CreatedRecord(line=line, id=prediction_id)))

    async def record_done(self, line: int, digest: str | None = None) -> None:
        """Journal that ``line``'s result is in the results file (``digest``: its line's
        :func:`line_hash`)."""
        await self._file.sync(self._append(DoneRecord(line=line, input_sha256=digest)))

    async def aclose(self) -> None:
        """Sync and close the file."""
        await self._file.aclose()

    def close(self) -> None:
        """Close the file without waiting for a sync (when the batch gives up before it starts)."""
        self._file.close()


# -- one run at a time ------------------------------------------------------------------------------


class BatchLockedError(Exception):
    """Another run holds the batch's lock; the message names it (pid, host, start time)."""


class BatchLock:
    """An exclusive, non-blocking OS lock on ``results.jsonl.lock`` for the length of one run.

    The lock file holds a line naming its holder (pid, host, start time) for the message a second
    run prints. The OS releases the lock when the holder exits, however it exits (a SIGKILL too),
    so a stale lock file never blocks anyone: only a live holder does. The gotcha: ``flock`` locks
    are advisory and may not hold across hosts on some network file systems.
    """

    def __init__(self, path: Path, fd: int) -> None:
        """Hold an already-locked ``fd``; use :meth:`acquire`, which takes the lock."""
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path, *, clock: Callable[[], dt.datetime] = _utcnow) -> BatchLock:
        """Take the lock or raise BatchLockedError at once (OSError if the file cannot be made)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise BatchLockedError(
                f"another run of this batch is using {path.name} ({holder}); wait for it to "
                "finish or stop it, or use another --out"
            )
        lock = cls(path, fd)
        try:
            os.ftruncate(fd, 0)
            started = format_timestamp(clock())
            holder = f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n"
            os.pwrite(fd, holder.encode(), 0)
        except BaseException:
            lock.release()
            raise
        return lock

    def release(self) -> None:
        """Release the lock (the file stays; an unlocked file blocks nobody)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _read_holder(fd: int) -> str:
    """The holder line written into the lock file, for the "another run is using it" message.

    Empty when the holder has taken the lock but not yet written its line (a start-up race), which
    the message then says instead of showing nothing.
    """
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"held by {text}" if text else "held by a process that is just starting"


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        """Lock the first byte of ``fd`` without waiting; False if another process holds it."""
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        """Take an exclusive ``flock`` on ``fd`` without waiting; False if another process holds it.

        Any other OSError (a file system without locks) propagates: running unlocked would let
        two runs create the same predictions.
        """
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
