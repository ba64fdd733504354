"""The CLI in a subprocess against the fake server: run, predictions, batch, crashes, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stamina

from areplicate._cli import main
from areplicate.testing import FakeReplicate, Faults, add_demo_models

from .conftest import CANCEL_KEY, CREATE_KEY, RUN_TIMEOUT, Fake, cli_env, run_cli, start

PNG = b"\x89PNG\r\n\x1a\n"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def lines_until(stream: Any, predicate: Any) -> Iterator[str]:
    """Lines of a subprocess stream, up to and including the first that ``predicate`` accepts."""
    for line in stream:
        yield line
        if predicate(line):
            return
    raise AssertionError("the stream ended before the expected line")


def wait_for_progress(proc: subprocess.Popen[str], count: int) -> list[str]:
    """Read the batch's plain progress lines until ``count`` items have finished."""
    assert proc.stderr is not None
    seen = 0

    def enough(line: str) -> bool:
        nonlocal seen
        seen += line.startswith("[")
        return seen >= count

    return list(lines_until(proc.stderr, enough))


@pytest.fixture
def invoke(fake: Fake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the CLI in this process (quicker than a subprocess) against the fake."""

    def invoke(*argv: str, cwd: Path, **env: str) -> tuple[int, str, str]:
        for name, value in cli_env(fake, **env).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(cwd)
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


class TestRun:
    def test_prints_the_output(self, fake: Fake, tmp_path: Path) -> None:
        r = run_cli(["run", "demo/echo", "text=hi", "n=3", "tags=[1,2]"], fake=fake, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"text": "hi", "n": 3, "tags": [1, 2]}
        assert fake.creates() == 1

    def test_stream_prints_tokens_as_they_arrive(self, fake: Fake, tmp_path: Path) -> None:
        r = run_cli(["run", "demo/chat", "max_words=5", "--stream"], fake=fake, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "Llamas are gentle, curious animals\n"

    @pytest.mark.parametrize("stream", [False, True])
    def test_ctrl_c_cancels_the_prediction(self, fake: Fake, tmp_path: Path, stream: bool) -> None:
        fake.gate.reset(0)
        tag = f"run-ctrl-c-{stream}"
        args = ["run", "test/gated", "i=1", f"tag={tag}", *(["--stream"] if stream else [])]
        proc = start(args, fake=fake, cwd=tmp_path)
        fake.gate.wait_held(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == 130, err
        assert "interrupted" in err
        (held,) = [p for p in fake.server.predictions if p["input"].get("tag") == tag]
        assert held["status"] == "canceled"

    def test_a_failed_prediction_exits_1_with_the_models_error(
        self, invoke: Any, tmp_path: Path
    ) -> None:
        code, out, err = invoke("run", "demo/flaky", "seed=10", cwd=tmp_path)
        assert code == 1
        assert out == ""
        assert "failed" in err
        assert "fails for seeds divisible by 5 (got 10)" in err

    def test_json_is_the_whole_prediction(self, invoke: Any, tmp_path: Path) -> None:
        code, out, err = invoke("run", "demo/echo", "a=1", "--json", cwd=tmp_path)
        assert code == 0, err
        data = json.loads(out)
        assert data["status"] == "succeeded"
        assert data["output"] == {"a": 1}
        assert data["model"] == "demo/echo"
        assert data["id"]

    def test_no_wait_prints_just_the_id(self, invoke: Any, fake: Fake, tmp_path: Path) -> None:
        code, out, err = invoke("run", "demo/echo", "--no-wait", "a=1", cwd=tmp_path)
        assert code == 0, err
        assert fake.server.prediction(out.strip())["input"] == {"a": 1}

    def test_a_file_input_is_sent_and_file_outputs_are_saved(
        self, invoke: Any, tmp_path: Path
    ) -> None:
        (tmp_path / "note.txt").write_text("hello file")
        code, out, err = invoke("run", "demo/echo", "doc=@note.txt", cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["doc"].startswith(("data:", "http"))

        code, out, err = invoke(
            "run", "demo/pixel", "prompt=a llama", "--save", "out", cwd=tmp_path
        )
        assert code == 0, err
        saved = tmp_path / "out" / "out-0.png"
        assert saved.read_bytes().startswith(PNG)
        assert f"saved {Path('out') / 'out-0.png'}" in err

    def test_input_the_model_rejects_exits_2_naming_the_field(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        code, _, err = invoke("run", "demo/pixel", "size=999", "--validate", cwd=tmp_path)
        assert code == 2
        assert "size: 999 is too large" in err
        assert fake.creates() == 0  # checked before sending
        code, _, err = invoke("run", "demo/pixel", "size=999", cwd=tmp_path)
        assert code == 2
        assert "HTTP 422" in err
        assert "size" in err

    def test_an_unknown_model_exits_3(self, invoke: Any, tmp_path: Path) -> None:
        code, _, err = invoke("run", "demo/nope", "a=1", cwd=tmp_path)
        assert code == 3
        assert "not found" in err

    def test_a_rejected_token_exits_3_and_is_not_printed(self, tmp_path: Path) -> None:
        from areplicate.testing import FakeReplicate

        strict = FakeReplicate(token="r8_the_right_one")
        with strict.serve_in_thread() as url:
            r = run_cli(
                ["run", "demo/echo", "a=1"],
                fake=None,
                cwd=tmp_path,
                REPLICATE_API_TOKEN="r8_the_wrong_one",
                REPLICATE_BASE_URL=url,
            )
        assert r.returncode == 3
        assert "REPLICATE_API_TOKEN" in r.stderr
        assert "the_wrong_one" not in r.stdout + r.stderr


class TestPredictions:
    def test_get_list_and_cancel(self, invoke: Any, fake: Fake, tmp_path: Path) -> None:
        # The fake is shared: make the five the list asks for here, whatever ran before.
        for n in range(4):
            code, _, err = invoke("run", "demo/echo", f"text=older {n}", cwd=tmp_path)
            assert code == 0, err
        fake.gate.reset(0)  # test/gated now runs until cancelled
        code, out, err = invoke("run", "test/gated", "i=7", "--no-wait", cwd=tmp_path)
        assert code == 0, err
        pid = out.strip()

        code, out, err = invoke("predictions", "get", pid, cwd=tmp_path)
        assert code == 0, err
        assert f"id:      {pid}" in out
        assert "model:   test/gated" in out

        code, out, err = invoke("predictions", "list", "-n", "5", cwd=tmp_path)
        assert code == 0, err
        first = out.splitlines()[0].split("\t")
        assert first[0] == pid
        assert first[2] == "test/gated"
        assert len(out.splitlines()) == 5

        code, out, err = invoke("predictions", "cancel", pid, "--json", cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["status"] == "canceled"
        assert fake.server.prediction(pid)["status"] == "canceled"

    def test_get_of_an_unknown_id_exits_3(self, invoke: Any, tmp_path: Path) -> None:
        code, _, err = invoke("predictions", "get", "doesnotexist", cwd=tmp_path)
        assert code == 3
        assert "not found" in err


class TestBatch:
    def test_end_to_end_with_bad_lines_reported_and_the_rest_run(
        self, fake: Fake, tmp_path: Path
    ) -> None:
        lines = [json.dumps({"seed": n}) for n in range(1, 31)]
        lines[4] = "{not json"
        lines[9] = "[1, 2]"
        lines[14] = ""
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        r = run_cli(
            ["batch", "demo/flaky", str(inputs), "--out", "results.jsonl", "-c", "4"],
            fake=fake,
            cwd=tmp_path,
        )
        assert r.returncode == 1, r.stderr  # some failed
        results = {res["line"]: res for res in read_results(tmp_path / "results.jsonl")}
        assert sorted(results) == [n for n in range(1, 31) if n != 15]
        assert results[5]["status"] == "invalid"
        assert results[5]["error"].startswith("line 5 is not valid JSON")
        assert results[10]["status"] == "invalid"
        assert "line 10 is a JSON array" in results[10]["error"]
        for line, res in results.items():
            if line in (5, 10):
                continue
            seed = line
            assert res["status"] == ("failed" if seed % 5 == 0 else "succeeded")
            assert res["output"] == (None if seed % 5 == 0 else f"ok {seed}")
            assert res["id"]
        assert fake.creates() == 27
        assert "[29/29]" in r.stderr  # plain progress lines off a terminal
        assert "Done: 29 of 29" in r.stderr

    def test_all_succeeded_exits_0_and_a_rerun_creates_nothing(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", [json.dumps({"k": n}) for n in range(20)])
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl"]
        code, _, err = invoke(*args, cwd=tmp_path)
        assert code == 0, err
        results = read_results(tmp_path / "r.jsonl")
        assert sorted((r["line"], r["output"]) for r in results) == [
            (n + 1, {"k": n}) for n in range(20)
        ]
        assert (tmp_path / "r.jsonl.journal").exists()

        code, _, err = invoke(*args, cwd=tmp_path)
        assert code == 0, err
        assert "Resuming: 20 of 20 already done, 0 left" in err
        assert fake.creates() == 20
        assert len(read_results(tmp_path / "r.jsonl")) == 20

    def test_restart_starts_over(self, invoke: Any, fake: Fake, tmp_path: Path) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", ['{"k": 1}', '{"k": 2}'])
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl"]
        assert invoke(*args, cwd=tmp_path)[0] == 0
        code, _, err = invoke(*args, "--restart", cwd=tmp_path)
        assert code == 0, err
        assert fake.creates() == 4
        assert len(read_results(tmp_path / "r.jsonl")) == 2

    def test_an_unreachable_api_halts_the_batch_and_a_rerun_finishes_it(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"offline {n}"}) for n in range(40)]
        )
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl", "-c", "4"]
        stamina.set_testing(True, attempts=2)  # no backoff between retries (reset by conftest)
        # Nothing listens on port 9: every create fails before it is sent.
        code, _, err = invoke(*args, cwd=tmp_path, REPLICATE_BASE_URL="http://127.0.0.1:9/v1")
        assert code == 3, err
        assert "could not reach the API" in err
        assert "run the same command again to resume" in err
        assert not (tmp_path / "r.jsonl").read_text()  # nothing is recorded as done or failed

        code, _, err = invoke(*args, cwd=tmp_path)
        assert code == 0, err
        assert sorted(r["line"] for r in read_results(tmp_path / "r.jsonl")) == list(range(1, 41))
        assert fake.creates() == 40

    def test_lost_and_failed_creates_never_make_a_prediction_twice(
        self, invoke: Any, tmp_path: Path, settle_fast: None
    ) -> None:
        # Creates answered 5xx before they run, or run and lose their response on the way back.
        flaky = FakeReplicate(
            faults=Faults(error_5xx_rate=0.1, drop_rate=0.2, seed=3, routes=[CREATE_KEY]),
            record_requests=False,
        )
        add_demo_models(flaky)
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"lossy {n}"}) for n in range(60)]
        )
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl", "-c", "8"]
        codes = []
        with flaky.serve_in_thread() as url:
            for _ in range(10):  # each run finishes what it can; the rest is left to the next
                code, _, err = invoke(*args, cwd=tmp_path, REPLICATE_BASE_URL=url)
                codes.append(code)
                if code != 3:
                    break
        assert codes[-1] == 0, err
        assert flaky.status_counts[500] + flaky.status_counts[502] + flaky.status_counts[503]
        results = read_results(tmp_path / "r.jsonl")
        assert sorted(r["line"] for r in results) == list(range(1, 61))
        made = [p["input"]["text"] for p in flaky.predictions]
        assert sorted(made) == sorted(f"lossy {n}" for n in range(60))  # each exactly once

    def test_download_saves_files_named_by_line(self, invoke: Any, tmp_path: Path) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"prompt": f"llama {n}"}) for n in range(3)]
        )
        code, _, err = invoke(
            "batch",
            "demo/pixel",
            str(inputs),
            "--out",
            "r.jsonl",
            "--download",
            "imgs",
            cwd=tmp_path,
        )
        assert code == 0, err
        for res in read_results(tmp_path / "r.jsonl"):
            path = Path(res["files"][0])
            assert path == Path("imgs") / f"{res['line']}-out-0.png"
            assert (tmp_path / path).read_bytes().startswith(PNG)

    @pytest.mark.parametrize("hook", ["created", "intent"])
    def test_a_crash_in_the_create_window_then_a_rerun_creates_each_exactly_once(
        self, fake: Fake, tmp_path: Path, hook: str
    ) -> None:
        # Inputs of their own: a lookup may match predictions of the same input made by another
        # batch within the last minutes, which on the shared fake would skew the create count.
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"{hook} {n}"}) for n in range(300)]
        )
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl", "-c", "16"]
        crashed = run_cli(args, fake=fake, cwd=tmp_path, crash_at=(hook, 100))
        assert crashed.returncode == 137, crashed.stderr
        partial = read_results(tmp_path / "r.jsonl")
        assert 0 < len(partial) < 300

        resumed = run_cli(args, fake=fake, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "Resuming:" in resumed.stderr
        results = read_results(tmp_path / "r.jsonl")
        assert sorted(r["line"] for r in results) == list(range(1, 301))
        assert all(r["output"] == {"text": f"{hook} {r['line'] - 1}"} for r in results)
        assert fake.creates() == 300
        assert len({r["id"] for r in results}) == 300

    def test_a_lookup_prefers_this_batchs_prediction_over_an_older_identical_one(
        self, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"i": n, "tag": "twin"}) for n in range(50)]
        )
        other = run_cli(
            ["batch", "test/gated", str(inputs), "--out", "other.jsonl"], fake=fake, cwd=tmp_path
        )
        assert other.returncode == 0, other.stderr
        # The same inputs again; killed while 16 creates are held: their ids never seen.
        fake.gate.reset(20)
        args = ["batch", "test/gated", str(inputs), "--out", "r.jsonl", "-c", "16"]
        proc = start(args, fake=fake, cwd=tmp_path)
        try:
            fake.gate.wait_held(16)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.communicate(timeout=RUN_TIMEOUT)
        fake.gate.open()
        resumed = run_cli(args, fake=fake, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "(16 to look up first)" in resumed.stderr
        ids = {r["id"] for r in read_results(tmp_path / "r.jsonl")}
        assert len(ids) == 50
        assert not ids & {r["id"] for r in read_results(tmp_path / "other.jsonl")}
        assert fake.creates() == 100

    def test_sigkill_part_way_then_a_rerun_creates_each_exactly_once(
        self, fake: Fake, tmp_path: Path
    ) -> None:
        tag = "sigkill"
        fake.gate.reset(150)  # inputs from i=150 on hang until the gate opens: it cannot finish
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"i": n, "tag": tag}) for n in range(300)]
        )
        args = ["batch", "test/gated", str(inputs), "--out", "r.jsonl", "-c", "16"]
        proc = start(args, fake=fake, cwd=tmp_path)
        try:
            # Killed while 16 creates are held open by the gate: sent, their ids never seen.
            fake.gate.wait_held(16)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == -signal.SIGKILL
        assert len(read_results(tmp_path / "r.jsonl")) == 150
        assert fake.creates() == 166

        fake.gate.open()
        resumed = run_cli(args, fake=fake, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "150 left (16 to look up first)" in resumed.stderr
        results = read_results(tmp_path / "r.jsonl")
        assert sorted(r["line"] for r in results) == list(range(1, 301))
        assert all(r["output"] == r["line"] - 1 for r in results)
        assert fake.creates() == 300

    def test_ctrl_c_once_leaves_predictions_running_and_a_rerun_attaches_to_them(
        self, fake: Fake, tmp_path: Path
    ) -> None:
        tag = "ctrl-c-once"
        fake.gate.reset(100)
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"i": n, "tag": tag}) for n in range(200)]
        )
        args = ["batch", "test/gated", str(inputs), "--out", "r.jsonl", "-c", "8"]
        proc = start(args, fake=fake, cwd=tmp_path)
        assert proc.stderr is not None
        wait_for_progress(proc, 50)
        proc.send_signal(signal.SIGINT)
        list(lines_until(proc.stderr, lambda line: line.startswith("Stopping:")))
        fake.gate.open()  # the creates held open by the gate now return
        _, rest = proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == 130, rest
        assert "Run the same command again to resume" in rest
        assert "not canceled" in rest
        assert fake.server.counts[CANCEL_KEY] == 0
        done_before = len(read_results(tmp_path / "r.jsonl"))
        assert 50 <= done_before < 200

        resumed = run_cli(args, fake=fake, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        results = read_results(tmp_path / "r.jsonl")
        assert sorted(r["line"] for r in results) == list(range(1, 201))
        assert fake.creates() == 200

    def test_ctrl_c_twice_cancels_running_predictions(self, fake: Fake, tmp_path: Path) -> None:
        tag = "ctrl-c-twice"
        fake.gate.reset(0)  # every prediction runs until the gate opens (or it is canceled)
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"i": n, "tag": tag}) for n in range(50)]
        )
        args = ["batch", "test/gated", str(inputs), "--out", "r.jsonl", "-c", "8"]
        proc = start(args, fake=fake, cwd=tmp_path)
        assert proc.stderr is not None
        fake.gate.wait_held(8)
        proc.send_signal(signal.SIGINT)
        list(lines_until(proc.stderr, lambda line: line.startswith("Stopping:")))
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == 130, rest
        assert "8 running prediction(s) canceled" in rest
        started = fake.server.predictions[-fake.creates() :]
        assert len(started) == 8
        assert all(p["status"] == "canceled" for p in started)

        fake.gate.open()
        resumed = run_cli(args, fake=fake, cwd=tmp_path)
        assert resumed.returncode == 1, resumed.stderr  # 8 canceled: not everything succeeded
        results = read_results(tmp_path / "r.jsonl")
        assert sorted(r["line"] for r in results) == list(range(1, 51))
        canceled = sorted(r["line"] for r in results if r["status"] == "canceled")
        assert canceled == sorted(int(p["input"]["i"]) + 1 for p in started)
        assert fake.creates() == 50  # the canceled ones are reported, not created again


def test_fake_server_serves_until_interrupted(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "areplicate", "fake-server", "--port", "0"],
        cwd=tmp_path,
        env=cli_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("Fake Replicate API at http://127.0.0.1:")
        url = first.split()[-1]
        r = run_cli(
            ["run", "demo/echo", "a=1"],
            fake=None,
            cwd=tmp_path,
            REPLICATE_API_TOKEN="anything",
            REPLICATE_BASE_URL=url,
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"a": 1}
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=RUN_TIMEOUT)
    assert server.returncode == 0


def test_demo_runs_offline_and_prints_a_summary(tmp_path: Path) -> None:
    # No token, and a base URL that goes nowhere: the demo must use neither.
    r = run_cli(
        ["demo", "--out", "out"],
        fake=None,
        cwd=tmp_path,
        REPLICATE_BASE_URL="http://127.0.0.1:9/v1",
    )
    assert r.returncode == 0, r.stderr
    assert "Summary" in r.stdout
    assert "per prediction" in r.stdout
    assert "Wall time:" in r.stdout
    assert f"Outputs: 100 files in {Path('out')}" in r.stdout
    pngs = list((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 100
    assert all(p.read_bytes().startswith(PNG) for p in pngs)


def test_demo_live_without_a_token_says_what_to_do(tmp_path: Path) -> None:
    r = run_cli(["demo", "--live"], fake=None, cwd=tmp_path)
    assert r.returncode == 2
    assert "REPLICATE_API_TOKEN" in r.stderr
