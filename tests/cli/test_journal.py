"""The batch journal: replay, torn tails, strict parsing, durable appends."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from pathlib import Path

import pytest

from areplicate._cli import _journal
from areplicate._cli._journal import (
    AppendOnlyFile,
    BatchLock,
    BatchLockedError,
    BatchRecord,
    CreatedRecord,
    DoneRecord,
    IntentRecord,
    Journal,
    JournalError,
    JournalState,
    encode_record,
    input_hash,
    journal_path,
    line_hash,
    parse_records,
    parse_results,
    replay_results,
)

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
HEADER = (
    b'{"type":"batch","ref":"a/b","inputs":"in.jsonl","time":"2026-01-02T03:04:05Z","version":1}\n'
)


def clock() -> dt.datetime:
    return T0


def open_journal(path: Path, ref: str = "a/b") -> Journal:
    return Journal.open(path, ref=ref, inputs=Path("in.jsonl"), clock=clock)


class TestParseRecords:
    def test_every_record_type_round_trips(self) -> None:
        records = [
            BatchRecord(ref="a/b", inputs="in.jsonl", time=T0),
            IntentRecord(line=1, input_sha256="ab", time=T0),
            CreatedRecord(line=1, id="p1"),
            DoneRecord(line=1),
        ]
        data = b"".join(encode_record(r) for r in records)
        parsed, good = parse_records(data)
        assert parsed == records
        assert good == len(data)

    def test_lines_are_compact_json_with_the_type_first(self) -> None:
        line = encode_record(CreatedRecord(line=7, id="p7"))
        assert line == b'{"type":"created","line":7,"id":"p7"}\n'

    def test_a_last_line_without_newline_is_torn_and_dropped(self) -> None:
        data = HEADER + b'{"type":"done","line":1}\n{"type":"cre'
        records, good = parse_records(data)
        assert [type(r) for r in records] == [BatchRecord, DoneRecord]
        assert data[:good].endswith(b'"line":1}\n')

    def test_a_complete_last_line_that_parses_without_its_newline_is_still_dropped(self) -> None:
        data = HEADER + b'{"type":"done","line":1}'
        records, good = parse_records(data)
        assert len(records) == 1
        assert good == len(HEADER)

    def test_a_garbled_last_line_is_dropped(self) -> None:
        data = HEADER + b'{"type":"done","li\x00\x00\n'
        records, good = parse_records(data)
        assert len(records) == 1
        assert good == len(HEADER)

    @pytest.mark.parametrize(
        ("line", "problem"),
        [
            (b'{"type":"done","line":"3"}', "expected int"),
            (b'{"type":"done","line":true}', "expected int"),
            (b'{"type":"done","line":3,"extra":1}', "extra fields"),
            (b'{"type":"done"}', "required field missing"),
            (b'{"type":"finished","line":3}', "unknown record type"),
            (b'{"line":3}', "unknown record type"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"type":"intent","line":1,"input_sha256":"a","time":"yesterday"}', "time"),
            (b'{"type":"created","line":1,"id":5}', "expected str"),
            (b"not json", "line 2 is damaged"),
        ],
    )
    def test_a_damaged_line_before_the_last_is_an_error_naming_it(
        self, line: bytes, problem: str
    ) -> None:
        data = HEADER + line + b"\n" + b'{"type":"done","line":9}\n'
        with pytest.raises(JournalError, match="journal line 2 is damaged") as info:
            parse_records(data)
        assert problem in str(info.value)

    def test_empty(self) -> None:
        assert parse_records(b"") == ([], 0)


class TestJournalState:
    def test_folds_records_line_by_line(self) -> None:
        state = JournalState.from_records(
            [
                BatchRecord(ref="a/b", inputs="x", time=T0),
                IntentRecord(line=1, input_sha256="h1", time=T0),
                IntentRecord(line=2, input_sha256="h2", time=T0),
                IntentRecord(line=3, input_sha256="h3", time=T0),
                CreatedRecord(line=1, id="p1"),
                CreatedRecord(line=3, id="p3"),
                DoneRecord(line=3),
            ]
        )
        assert state.created == {1: "p1", 3: "p3"}
        assert state.done == {3: None}
        assert state.lost == {2}
        assert state.claimed == {"p1", "p3"}

    def test_a_new_intent_runs_the_line_afresh_and_its_old_id_stays_claimed(self) -> None:
        state = JournalState.from_records(
            [
                BatchRecord(ref="a/b", inputs="x", time=T0),
                IntentRecord(line=1, input_sha256="h1", time=T0),
                CreatedRecord(line=1, id="p1"),
                DoneRecord(line=1, input_sha256="h1"),
                IntentRecord(line=1, input_sha256="h2", time=T0),
            ]
        )
        assert state.created == {}
        assert state.done == {}
        assert state.lost == {1}
        assert state.recorded_hash(1) == "h2"
        assert state.claimed == {"p1"}

    def test_the_recorded_hash_is_the_done_one_else_the_intents(self) -> None:
        state = JournalState.from_records(
            [
                BatchRecord(ref="a/b", inputs="x", time=T0),
                IntentRecord(line=1, input_sha256="h1", time=T0),
                DoneRecord(line=1),
                DoneRecord(line=2, input_sha256="raw:ab"),
            ]
        )
        assert state.recorded_hash(1) == "h1"
        assert state.recorded_hash(2) == "raw:ab"
        assert state.recorded_hash(3) is None

    def test_records_before_the_header_are_damage(self) -> None:
        with pytest.raises(JournalError, match="does not start with a batch header"):
            JournalState.from_records([DoneRecord(line=1)])

    def test_two_headers_are_damage(self) -> None:
        header = BatchRecord(ref="a/b", inputs="x", time=T0)
        with pytest.raises(JournalError, match="two batch headers"):
            JournalState.from_records([header, header])


class TestJournal:
    async def test_a_reopened_journal_replays_what_was_recorded(self, tmp_path: Path) -> None:
        path = tmp_path / "out.jsonl.journal"
        journal = open_journal(path)
        await journal.record_intent(1, {"prompt": "a"})
        await journal.record_created(1, "p1")
        await journal.record_intent(2, {"prompt": "b"})
        await journal.record_done(1)
        await journal.aclose()

        again = open_journal(path)
        assert again.state.created == {1: "p1"}
        assert again.state.done == {1: None}
        assert again.state.lost == {2}
        assert again.state.intents[2].input_sha256 == input_hash({"prompt": "b"})
        assert again.state.intents[2].time == T0
        await again.aclose()

    async def test_a_torn_tail_is_cut_off_before_the_next_append(self, tmp_path: Path) -> None:
        path = tmp_path / "j"
        journal = open_journal(path)
        await journal.record_created(1, "p1")
        await journal.aclose()
        with path.open("ab") as f:
            f.write(b'{"type":"created","line":2,"i')  # killed mid-write

        journal = open_journal(path)
        assert journal.state.created == {1: "p1"}
        await journal.record_done(1, "h1")
        await journal.aclose()
        lines = path.read_bytes().splitlines()
        assert lines[-1] == b'{"type":"done","line":1,"input_sha256":"h1"}'
        assert parse_records(path.read_bytes())[1] == path.stat().st_size

    async def test_a_journal_of_another_model_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "j"
        await open_journal(path, ref="a/b").aclose()
        with pytest.raises(JournalError, match="belongs to a batch of a/b, not c/d"):
            open_journal(path, ref="c/d")

    async def test_a_journal_of_another_format_version_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "j"
        path.write_bytes(HEADER.replace(b'"version":1', b'"version":99'))
        with pytest.raises(JournalError, match="format 99"):
            open_journal(path)

    async def test_the_header_is_written_once(self, tmp_path: Path) -> None:
        path = tmp_path / "j"
        await open_journal(path).aclose()
        await open_journal(path).aclose()
        assert path.read_bytes().count(b'"type":"batch"') == 1

    def test_the_journal_sits_beside_the_results(self, tmp_path: Path) -> None:
        assert journal_path(tmp_path / "results.jsonl") == tmp_path / "results.jsonl.journal"


class TestAppendOnlyFile:
    async def test_sync_returns_only_after_an_fsync_that_covers_the_write(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "f"
        synced_sizes: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced_sizes.append(os.fstat(fd).st_size)
            real_fsync(fd)

        monkeypatch.setattr(_journal.os, "fsync", fsync)
        file = AppendOnlyFile(path)
        seq = file.write(b"one\n")
        await file.sync(seq)
        assert synced_sizes
        assert synced_sizes[-1] >= 4
        await file.aclose()

    async def test_concurrent_syncs_share_fsyncs(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = 0
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            nonlocal calls
            calls += 1
            real_fsync(fd)

        monkeypatch.setattr(_journal.os, "fsync", fsync)
        file = AppendOnlyFile(tmp_path / "f")

        async def append(n: int) -> None:
            await file.sync(file.write(f"{n}\n".encode()))

        await asyncio.gather(*(append(n) for n in range(50)))
        assert 1 <= calls < 50
        await file.aclose()
        assert sorted((tmp_path / "f").read_text().split()) == sorted(str(n) for n in range(50))

    async def test_truncate_at_cuts_a_torn_tail(self, tmp_path: Path) -> None:
        path = tmp_path / "f"
        path.write_bytes(b"good\nto")
        file = AppendOnlyFile(path, truncate_at=5)
        await file.sync(file.write(b"next\n"))
        await file.aclose()
        assert path.read_bytes() == b"good\nnext\n"


class TestParseResults:
    def test_statuses_by_line(self) -> None:
        data = (
            b'{"line":2,"id":"p","status":"succeeded","output":1,"error":null}\n'
            b'{"line":7,"id":null,"status":"invalid","output":null,"error":"x"}\n'
        )
        assert parse_results(data) == ({2: "succeeded", 7: "invalid"}, len(data))

    def test_a_torn_last_result_is_dropped(self) -> None:
        good = b'{"line":2,"status":"succeeded"}\n'
        assert parse_results(good + b'{"line":3,"sta') == ({2: "succeeded"}, len(good))

    def test_a_failed_download_is_kept_for_a_retry_until_a_later_result(self) -> None:
        failed = b'{"line":2,"status":"succeeded","output":"u","download_error":"ENOSPC"}\n'
        gone = b'{"line":3,"status":"succeeded","download_error":"x","download_gone":true}\n'
        state, _ = replay_results(failed + gone)
        assert list(state.downloads) == [2]
        assert state.downloads[2]["output"] == "u"
        state, _ = replay_results(failed + b'{"line":2,"status":"succeeded","files":[]}\n')
        assert state.downloads == {}
        assert state.status == {2: "succeeded"}

    def test_a_damaged_result_before_the_last_is_an_error(self) -> None:
        with pytest.raises(JournalError, match="results line 1 is damaged"):
            parse_results(b'{"status":"succeeded"}\n{"line":3,"status":"failed"}\n')


def test_input_hash_ignores_key_order() -> None:
    assert input_hash({"a": 1, "b": [1, 2]}) == input_hash({"b": [1, 2], "a": 1})
    assert input_hash({"a": 1}) != input_hash({"a": 2})


def test_line_hash_is_the_input_hash_of_an_object_and_a_raw_digest_otherwise() -> None:
    assert line_hash(b'{"b": 1, "a": 2}\n', {"b": 1, "a": 2}) == input_hash({"a": 2, "b": 1})
    assert line_hash(b"[1]\n", [1]).startswith("raw:")
    assert line_hash(b"[1]\n", [1]) != line_hash(b"[2]\n", [2])


async def test_a_version_1_journal_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(HEADER + b'{"type":"done","line":1}\n')
    journal = open_journal(path)
    assert journal.state.done == {1: None}
    await journal.aclose()


class TestBatchLock:
    def test_a_second_holder_is_refused_naming_the_first(self, tmp_path: Path) -> None:
        path = tmp_path / "r.jsonl.lock"
        lock = BatchLock.acquire(path, clock=clock)
        try:
            with pytest.raises(BatchLockedError) as caught:
                BatchLock.acquire(path)
            message = str(caught.value)
            assert f"pid {os.getpid()} on {socket.gethostname()}" in message
            assert "started 2026-01-02T03:04:05" in message
        finally:
            lock.release()
        BatchLock.acquire(path).release()  # released: free again, although the file remains
