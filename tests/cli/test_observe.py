"""What the CLI tells about the client's work: ``-v`` ends with the request counts and the pace,
and a batch ends with what it cost, per model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from areplicate._cli import main

from .conftest import Fake, cli_env


@pytest.fixture
def invoke(fake: Fake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the CLI in this process against the fake."""

    def invoke(*argv: str, cwd: Path) -> tuple[int, str, str]:
        for name, value in cli_env(fake).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(cwd)
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_verbose_ends_with_the_clients_counts(invoke: Any, fake: Fake, tmp_path: Path) -> None:
    code, out, err = invoke("-v", "run", "demo/echo", "text=hi", cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out) == {"text": "hi"}
    closing = [line for line in err.splitlines() if " closed: " in line]
    assert len(closing) == 1
    assert re.fullmatch(
        rf"areplicate: DEBUG: client of {re.escape(fake.url)} closed: \d+ requests?, 0 429s, "
        r"0 retries, pacing off",
        closing[0],
    ), closing


def test_quiet_runs_say_nothing_of_it(invoke: Any, tmp_path: Path) -> None:
    code, _, err = invoke("run", "demo/echo", "text=hi", cwd=tmp_path)
    assert code == 0, err
    assert " closed: " not in err


def test_a_batch_ends_with_what_it_cost(invoke: Any, tmp_path: Path) -> None:
    lines = [json.dumps({"seed": n}) for n in range(1, 11)] + ["{not json"]
    (tmp_path / "in.jsonl").write_text("".join(line + "\n" for line in lines))
    code, _, err = invoke("batch", "demo/flaky", "in.jsonl", "--out", "r.jsonl", cwd=tmp_path)
    assert code == 1, err  # seeds 5 and 10 fail
    tail = err.splitlines()
    start = next(i for i, line in enumerate(tail) if line.startswith("Cost: "))
    model, total = tail[start], tail[start + 1]
    assert re.fullmatch(
        r"Cost: demo/flaky: 11 \(8 succeeded, 2 failed, 1 invalid\); predict_time [\d.]+ s "
        r"total, p50 [\d.]+ s, p95 [\d.]+ s",
        model,
    ), model
    assert re.fullmatch(
        r"Wall time [\d.]+ s; \d+ requests \([\d.]+ per prediction\), 0 retries, 0 429s\.", total
    ), total
