"""``areplicate batch`` accounts for every line exactly once: one run at a time, edited and
foreign inputs files, failed downloads, unreadable lines, full disks, 429s and 5xx faults."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import stamina

from areplicate._cli import main
from areplicate.testing import FakeReplicate, Faults, FileOut, add_demo_models
from areplicate.testing._demo import png

from .conftest import CREATE_KEY, RUN_TIMEOUT, Fake, cli_env, start

PNG = b"\x89PNG\r\n\x1a\n"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def latest(path: Path) -> dict[int, dict[str, Any]]:
    """The results by line, a later result of a line superseding an earlier one."""
    return {r["line"]: r for r in read_results(path)}


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the CLI in this process against the server at ``url``."""

    def invoke(*argv: str, cwd: Path, url: str) -> tuple[int, str, str]:
        env = cli_env(None)
        env["REPLICATE_API_TOKEN"] = "r8_cli_test_token"
        env["REPLICATE_BASE_URL"] = url
        for name in [n for n in os.environ if n.startswith(("REPLICATE_", "AREPLICATE_"))]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(cwd)
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


class TestOneRunAtATime:
    def test_a_second_run_on_the_same_out_exits_2_naming_the_first(
        self, fake: Fake, tmp_path: Path
    ) -> None:
        fake.gate.reset(0)  # every prediction waits for the gate: the first run cannot finish
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"i": n, "tag": "two-runs"}) for n in range(40)]
        )
        args = ["batch", "test/gated", str(inputs), "--out", "r.jsonl", "-c", "8"]
        first = start(args, fake=fake, cwd=tmp_path)
        second = None
        try:
            fake.gate.wait_held(8)  # the first run holds the batch and has creates in flight
            second = start(args, fake=fake, cwd=tmp_path)
            _, err = second.communicate(timeout=RUN_TIMEOUT)
            assert second.returncode == 2, err
            assert f"pid {first.pid} on {socket.gethostname()}" in err
            assert "another run of this batch is using r.jsonl.lock" in err
            assert fake.creates() == 8
        finally:
            fake.gate.open()
            _, err = first.communicate(timeout=RUN_TIMEOUT)
        assert first.returncode == 0, err
        assert sorted(latest(tmp_path / "r.jsonl")) == list(range(1, 41))
        assert fake.creates() == 40

    def test_two_runs_started_together_create_each_line_once(
        self, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"i": n, "tag": "together"}) for n in range(40)]
        )
        args = ["batch", "test/gated", str(inputs), "--out", "r.jsonl", "-c", "8"]
        procs = [start(args, fake=fake, cwd=tmp_path) for _ in range(2)]
        codes = []
        for proc in procs:
            _, err = proc.communicate(timeout=RUN_TIMEOUT)
            codes.append(proc.returncode)
            assert proc.returncode in (0, 2), err
        # Either one held the batch while the other was refused, or the second found it done.
        assert 0 in codes
        assert sorted(latest(tmp_path / "r.jsonl")) == list(range(1, 41))
        assert fake.creates() == 40


class TestInputsFile:
    def test_an_edited_line_runs_again_and_its_new_result_supersedes_the_old(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        lines = [json.dumps({"text": f"edit {n}"}) for n in range(5)]
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl"]
        assert invoke(*args, cwd=tmp_path, url=fake.url)[0] == 0
        lines[2] = json.dumps({"text": "edited"})
        write_lines(inputs, lines)

        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)
        assert code == 0, err
        assert "warning: 1 line(s) of" in err
        assert "line 3): running them again" in err
        assert fake.creates() == 6
        results = latest(tmp_path / "r.jsonl")
        assert results[3]["output"] == {"text": "edited"}
        assert [results[n]["output"] for n in (1, 2, 4, 5)] == [
            {"text": f"edit {n}"} for n in (0, 1, 3, 4)
        ]

        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)  # nothing changed since
        assert code == 0, err
        assert "warning" not in err
        assert fake.creates() == 6

    def test_reformatting_a_line_is_no_change(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", ['{"text": "fmt", "n": 1}'])
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl"]
        assert invoke(*args, cwd=tmp_path, url=fake.url)[0] == 0
        write_lines(inputs, ['{ "n":1,"text":"fmt" }'])
        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)
        assert code == 0, err
        assert "warning" not in err
        assert fake.creates() == 1

    def test_another_inputs_file_is_refused_unless_restart(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        first = write_lines(
            tmp_path / "a.jsonl", [json.dumps({"text": f"a {n}"}) for n in range(5)]
        )
        other = write_lines(
            tmp_path / "b.jsonl", [json.dumps({"text": f"b {n}"}) for n in range(5)]
        )
        assert (
            invoke("batch", "demo/echo", str(first), "-o", "r.jsonl", cwd=tmp_path, url=fake.url)[0]
            == 0
        )

        code, _, err = invoke(
            "batch", "demo/echo", str(other), "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 2, err
        assert "is not the inputs file this batch was started with" in err
        assert "--restart" in err
        assert fake.creates() == 5

        code, _, err = invoke(
            "batch",
            "demo/echo",
            str(other),
            "-o",
            "r.jsonl",
            "--restart",
            cwd=tmp_path,
            url=fake.url,
        )
        assert code == 0, err
        assert fake.creates() == 10
        assert sorted(r["output"]["text"] for r in read_results(tmp_path / "r.jsonl")) == sorted(
            f"b {n}" for n in range(5)
        )

    def test_the_same_lines_from_a_moved_file_resume(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        lines = [json.dumps({"text": f"moved {n}"}) for n in range(5)]
        first = write_lines(tmp_path / "a.jsonl", lines)
        assert (
            invoke("batch", "demo/echo", str(first), "-o", "r.jsonl", cwd=tmp_path, url=fake.url)[0]
            == 0
        )
        moved = write_lines(tmp_path / "b.jsonl", [*lines, json.dumps({"text": "appended"})])
        code, _, err = invoke(
            "batch", "demo/echo", str(moved), "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 0, err
        assert fake.creates() == 6

    def test_a_deeply_nested_line_is_invalid_and_the_rest_runs(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        deep = '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"
        inputs = write_lines(
            tmp_path / "in.jsonl", ['{"text": "deep 1"}', deep, '{"text": "deep 3"}']
        )
        args = ["batch", "demo/echo", str(inputs), "--out", "r.jsonl"]
        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)
        assert code == 1, err  # one line did not succeed
        results = latest(tmp_path / "r.jsonl")
        assert results[2]["status"] == "invalid"
        assert results[2]["error"].startswith("line 2 is nested too deeply")
        assert results[1]["status"] == results[3]["status"] == "succeeded"

        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)  # a re-run is done at once
        assert code == 1, err
        assert "Resuming: 3 of 3 already done" in err
        assert fake.creates() == 2


class TestFiles:
    def test_a_full_disk_before_the_journal_header_is_a_clear_error(
        self, invoke: Any, fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", ['{"text": "full"}'])
        real_write = os.write

        def full(fd: int, data: Any) -> int:
            if fd > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", full)
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "--out", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        monkeypatch.setattr(os, "write", real_write)
        assert code == 2, err
        assert "Traceback" not in err
        assert f"cannot write the batch journal {Path('r.jsonl.journal')}" in err
        assert "No space left on device" in err
        assert fake.creates() == 0

    def test_a_disk_that_fills_after_the_header_stops_the_batch_with_a_clear_error(
        self, invoke: Any, fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"filling {n}"}) for n in range(5)]
        )
        real_write = os.write
        files_written = 0

        def filling(fd: int, data: Any) -> int:
            nonlocal files_written
            if fd > 2:
                files_written += 1
                if files_written > 1:  # the journal's header fits; nothing after it does
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", filling)
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "--out", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        monkeypatch.setattr(os, "write", real_write)
        assert code == 2, err
        assert "Traceback" not in err
        assert "cannot write the batch's files" in err
        assert "No space left on device" in err
        assert fake.creates() == 0  # no intent on disk: nothing was sent

    def test_an_unusable_journal_path_is_a_clear_error(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", ['{"text": "dir"}'])
        (tmp_path / "r.jsonl.journal").mkdir()
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "--out", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 2, err
        assert "r.jsonl.journal" in err
        assert "Is a directory" in err

    def test_a_failed_download_keeps_the_result_and_a_rerun_retries_it(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"prompt": f"retry {n}"}) for n in range(3)]
        )
        (tmp_path / "imgs").write_text("a file where the download directory should be")
        args = ["batch", "demo/pixel", str(inputs), "-o", "r.jsonl", "--download", "imgs"]
        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)
        assert code == 1, err
        assert "3 line(s) succeeded but their --download failed" in err
        for res in latest(tmp_path / "r.jsonl").values():
            assert res["status"] == "succeeded"
            assert res["output"]
            assert res["id"]
            assert res["download_error"]
            assert res["files"] == []

        (tmp_path / "imgs").unlink()
        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)
        assert code == 0, err
        assert fake.creates() == 3
        for line, res in latest(tmp_path / "r.jsonl").items():
            assert "download_error" not in res
            assert res["files"] == [str(Path("imgs") / f"{line}-out-0.png")]
            assert (tmp_path / res["files"][0]).read_bytes().startswith(PNG)

    def test_a_300_character_output_name_is_shortened(self, invoke: Any, tmp_path: Path) -> None:
        long_name = "n" * 300 + ".png"
        server = FakeReplicate(record_requests=False)

        async def longname(prompt: str) -> list[FileOut]:
            return [FileOut(png(4, 4, prompt.encode()), long_name, "image/png")]

        server.add_model("test/longname", longname)
        inputs = write_lines(tmp_path / "in.jsonl", ['{"prompt": "long"}'])
        with server.serve_in_thread() as url:
            code, _, err = invoke(
                "batch",
                "test/longname",
                str(inputs),
                "-o",
                "r.jsonl",
                "--download",
                "d",
                cwd=tmp_path,
                url=url,
            )
        assert code == 0, err
        (res,) = read_results(tmp_path / "r.jsonl")
        saved = Path(res["files"][0])
        assert saved.parent == Path("d")
        assert saved.name.startswith("1-nnn")
        assert saved.name.endswith(".png")
        assert len(saved.name) < 255
        assert (tmp_path / saved).read_bytes().startswith(PNG)


class TestFaults:
    def test_429s_never_halt_the_batch(
        self, invoke: Any, tmp_path: Path, settle_fast: None
    ) -> None:
        stamina.set_testing(True, attempts=2)  # the client gives up on a 429 quickly
        server = FakeReplicate(
            faults=Faults(error_429_rate=0.3, seed=7, routes=[CREATE_KEY]), record_requests=False
        )
        add_demo_models(server)
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"slow down {n}"}) for n in range(40)]
        )
        with server.serve_in_thread() as url:
            code, _, err = invoke(
                "batch",
                "demo/echo",
                str(inputs),
                "-o",
                "r.jsonl",
                "-c",
                "8",
                cwd=tmp_path,
                url=url,
            )
        assert server.status_counts[429]
        assert code == 0, err
        assert "Fix that" not in err
        assert sorted(latest(tmp_path / "r.jsonl")) == list(range(1, 41))
        made = [p["input"]["text"] for p in server.predictions]
        assert sorted(made) == sorted(f"slow down {n}" for n in range(40))

    def test_a_halt_on_an_unreachable_api_says_there_is_nothing_to_fix(
        self, invoke: Any, tmp_path: Path
    ) -> None:
        stamina.set_testing(True, attempts=2)
        inputs = write_lines(tmp_path / "in.jsonl", ['{"text": "nobody home"}'])
        # Nothing listens on port 9: every create fails before it is sent.
        code, _, err = invoke(
            "batch",
            "demo/echo",
            str(inputs),
            "-o",
            "r.jsonl",
            cwd=tmp_path,
            url="http://127.0.0.1:9/v1",
        )
        assert code == 3, err
        assert "Fix that" not in err
        assert "The API could not be reached or kept failing" in err
        assert "run the same command again to resume (0 of 1 done; nothing is created twice)" in err

    @pytest.mark.slow
    def test_3000_lines_with_5_percent_5xx_finish_in_one_run(
        self, invoke: Any, tmp_path: Path, settle_fast: None
    ) -> None:
        server = FakeReplicate(faults=Faults(error_5xx_rate=0.05, seed=11), record_requests=False)
        add_demo_models(server)
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"faulty {n}"}) for n in range(3000)]
        )
        began = time.monotonic()
        with server.serve_in_thread() as url:
            code, _, err = invoke(
                "batch",
                "demo/echo",
                str(inputs),
                "-o",
                "r.jsonl",
                "-c",
                "64",
                cwd=tmp_path,
                url=url,
            )
        took = time.monotonic() - began
        assert server.status_counts[500] + server.status_counts[502] + server.status_counts[503]
        assert code == 0, err[-3000:]
        results = latest(tmp_path / "r.jsonl")
        assert sorted(results) == list(range(1, 3001))
        assert all(r["status"] == "succeeded" for r in results.values())
        made = [p["input"]["text"] for p in server.predictions]
        assert sorted(made) == sorted(f"faulty {n}" for n in range(3000))  # each exactly once
        print(f"3000 lines with 5% 5xx: one run, {took:.1f} s")
