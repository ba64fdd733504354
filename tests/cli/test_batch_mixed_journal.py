"""The journal of a mixed batch (format 3): a header naming no model, intents naming theirs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from areplicate._cli._journal import (
    BatchRecord,
    IntentRecord,
    Journal,
    JournalError,
    encode_record,
    parse_records,
    replay_results,
)

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def clock() -> dt.datetime:
    return T0


def open_journal(path: Path, ref: str | None) -> Journal:
    return Journal.open(path, ref=ref, inputs=Path("in.jsonl"), clock=clock)


def test_an_intent_names_its_model_only_in_a_mixed_batch() -> None:
    mixed = IntentRecord(line=1, input_sha256="ab", time=T0, model="a/b")
    single = IntentRecord(line=1, input_sha256="ab", time=T0)
    assert json.loads(encode_record(mixed))["model"] == "a/b"
    assert "model" not in json.loads(encode_record(single))
    header = BatchRecord(ref=None, inputs="in.jsonl", time=T0)
    data = b"".join(encode_record(r) for r in (header, mixed, single))
    assert parse_records(data) == ([header, mixed, single], len(data))


async def test_a_mixed_journal_reopens_as_mixed(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = open_journal(path, None)
    await journal.record_intent(1, {"model": "a/b", "input": {}}, model="a/b")
    await journal.aclose()
    again = open_journal(path, None)
    assert again.state.header is not None
    assert again.state.header.ref is None
    assert again.state.header.version == 3
    assert again.state.intents[1].model == "a/b"
    again.close()


async def test_a_mixed_journal_is_refused_to_a_single_model_batch(tmp_path: Path) -> None:
    path = tmp_path / "j"
    await open_journal(path, None).aclose()
    with pytest.raises(JournalError, match=r"belongs to a batch of mixed models .* not of a/b"):
        open_journal(path, "a/b")


async def test_a_single_model_journal_is_refused_to_a_mixed_batch(tmp_path: Path) -> None:
    path = tmp_path / "j"
    await open_journal(path, "a/b").aclose()
    with pytest.raises(JournalError, match="belongs to a batch of a/b, not of mixed models"):
        open_journal(path, None)


def test_a_format_2_header_naming_no_model_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "j"
    header = {"type": "batch", "ref": None, "inputs": "x", "time": "2026-01-02T03:04:05Z"}
    path.write_text(json.dumps({**header, "version": 2}) + "\n")
    with pytest.raises(JournalError, match="names no model"):
        open_journal(path, None)


def test_a_format_2_journal_of_a_single_model_batch_is_read(tmp_path: Path) -> None:
    path = tmp_path / "j"
    header = {"type": "batch", "ref": "a/b", "inputs": "x", "time": "2026-01-02T03:04:05Z"}
    intent = {"type": "intent", "line": 1, "input_sha256": "ab", "time": "2026-01-02T03:04:06Z"}
    path.write_text(json.dumps({**header, "version": 2}) + "\n" + json.dumps(intent) + "\n")
    journal = open_journal(path, "a/b")
    assert journal.state.lost == {1}
    assert journal.state.intents[1].model is None
    journal.close()


def test_the_results_replay_keeps_each_lines_model() -> None:
    data = (
        b'{"line":1,"model":"a/b","status":"succeeded"}\n'
        b'{"line":2,"status":"succeeded"}\n'
        b'{"line":3,"model":7,"status":"invalid"}\n'
    )
    state, _ = replay_results(data)
    assert state.models == {1: "a/b"}
