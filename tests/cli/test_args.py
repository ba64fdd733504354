"""The command line without a server: parsing, usage errors, exit codes, help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stamina

from areplicate._cli import main
from areplicate._cli._common import (
    EXIT_API,
    EXIT_USAGE,
    CLIError,
    describe_error,
    parse_assignments,
    parse_lifetime,
)
from areplicate._cli._outputs import render_output
from areplicate._errors import APIConnectionError, AuthenticationError, NotFoundError


@pytest.fixture(autouse=True)
def _no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach an API: point any client at a closed port."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_args_test")
    monkeypatch.setenv("REPLICATE_BASE_URL", "http://127.0.0.1:9/v1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestParseAssignments:
    def test_values_are_json_when_they_parse_and_text_otherwise(self) -> None:
        assert parse_assignments(
            [
                "prompt=a red fox",
                "steps=4",
                "scale=7.5",
                "fast=true",
                "seed=null",
                'tags=["a","b"]',
                'opts={"k": 1}',
                'quoted="42"',
                "empty=",
                "eq=a=b",
            ]
        ) == {
            "prompt": "a red fox",
            "steps": 4,
            "scale": 7.5,
            "fast": True,
            "seed": None,
            "tags": ["a", "b"],
            "opts": {"k": 1},
            "quoted": "42",
            "empty": "",
            "eq": "a=b",
        }

    def test_at_path_is_a_local_file(self, tmp_path: Path) -> None:
        (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
        assert parse_assignments(["image=@photo.jpg"], cwd=tmp_path) == {
            "image": tmp_path / "photo.jpg"
        }

    def test_double_at_is_literal_text(self) -> None:
        assert parse_assignments(["handle=@@replicate"]) == {"handle": "@replicate"}

    def test_a_missing_file_is_a_usage_error_naming_it(self, tmp_path: Path) -> None:
        with pytest.raises(CLIError, match=r"cannot read file for input 'image'.*nope\.png"):
            parse_assignments(["image=@nope.png"], cwd=tmp_path)

    def test_a_directory_is_not_a_file(self, tmp_path: Path) -> None:
        with pytest.raises(CLIError, match="cannot read file for input 'image'"):
            parse_assignments([f"image=@{tmp_path}"])

    @pytest.mark.parametrize("pair", ["prompt", "=value", " =x"])
    def test_a_pair_without_key_or_equals_is_a_usage_error(self, pair: str) -> None:
        with pytest.raises(CLIError, match="expected key=value"):
            parse_assignments([pair])

    def test_a_repeated_key_is_a_usage_error(self) -> None:
        with pytest.raises(CLIError, match="'a' is given twice"):
            parse_assignments(["a=1", "a=2"])


class TestParseLifetime:
    def test_accepts_api_durations(self) -> None:
        assert parse_lifetime("5m") == "5m"
        assert parse_lifetime("90") == "90"
        assert parse_lifetime(None) is None

    @pytest.mark.parametrize(
        ("text", "message"), [("soon", "not a duration"), ("2s", "at least 5s")]
    )
    def test_rejects_others(self, text: str, message: str) -> None:
        with pytest.raises(CLIError, match=message):
            parse_lifetime(text)


class TestRenderOutput:
    def test_text_tokens_urls_and_json(self) -> None:
        assert render_output("hello") == "hello"
        assert render_output(["Hel", "lo", "!"]) == "Hello!"
        assert render_output(["https://x/a.png", "https://x/b.png"]) == (
            "https://x/a.png\nhttps://x/b.png"
        )
        assert json.loads(render_output({"a": [1, 2]})) == {"a": [1, 2]}
        assert render_output(None) == ""


class TestDescribeError:
    def test_a_rejected_token_points_at_the_variable_and_the_demo(self) -> None:
        message, code = describe_error(AuthenticationError(401, "Unauthenticated"))
        assert code == EXIT_API
        assert "REPLICATE_API_TOKEN" in message
        assert "areplicate demo" in message

    def test_not_found_and_connection_errors_are_api_failures(self) -> None:
        assert describe_error(NotFoundError(404))[1] == EXIT_API
        message, code = describe_error(APIConnectionError("refused", sent=False))
        assert code == EXIT_API
        assert "could not reach the API" in message


class TestUsageErrors:
    def test_help_lists_every_command_and_the_exit_codes(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, "--help")
        assert code == 0
        for command in ("run", "batch", "predictions", "demo", "fake-server"):
            assert command in out
        assert "exit codes" in out
        assert "130" in out

    @pytest.mark.parametrize(
        "argv",
        [
            ["run", "--help"],
            ["batch", "--help"],
            ["predictions", "--help"],
            ["predictions", "list", "--help"],
            ["demo", "--help"],
        ],
    )
    def test_every_command_has_help(
        self, capsys: pytest.CaptureFixture[str], argv: list[str]
    ) -> None:
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert out.startswith("usage: areplicate")

    def test_fake_server_help_is_under_our_name(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, "fake-server", "--help")
        assert code == 0
        assert out.startswith("usage: areplicate fake-server")
        assert "--rate-limits" in out
        assert "--fail-rate" in out

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, "--version")
        assert code == 0
        assert out.startswith("areplicate ")

    def test_no_command_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys)
        assert code == EXIT_USAGE
        assert "COMMAND" in err

    def test_a_bad_model_reference(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = run(capsys, "run", "not-a-ref", "prompt=hi")
        assert code == EXIT_USAGE
        assert out == ""
        assert "areplicate: error: invalid model reference 'not-a-ref'" in err
        assert "owner/name" in err

    def test_an_unknown_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "run", "a/b", "--bogus", "x=1")
        assert code == EXIT_USAGE
        assert "unrecognized arguments: --bogus" in err

    def test_no_token_says_how_to_get_one_and_offers_the_demo(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("REPLICATE_API_TOKEN")
        code, _, err = run(capsys, "run", "a/b", "prompt=hi")
        assert code == EXIT_USAGE
        assert "set REPLICATE_API_TOKEN" in err
        assert "areplicate demo" in err

    def test_the_token_is_never_printed(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret value with spaces")
        code, out, err = run(capsys, "run", "a/b", "prompt=hi")
        assert code == EXIT_USAGE
        assert "secret" not in out + err

    def test_no_wait_with_stream(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "run", "a/b", "--no-wait", "--stream")
        assert code == EXIT_USAGE
        assert "--no-wait cannot be combined" in err

    def test_a_bad_lifetime(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "run", "a/b", "--lifetime", "1s")
        assert code == EXIT_USAGE
        assert "at least 5s" in err

    def test_batch_with_an_unreadable_inputs_file(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        code, _, err = run(
            capsys, "batch", "a/b", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")
        )
        assert code == EXIT_USAGE
        assert "cannot read inputs file" in err
        assert "missing.jsonl" in err

    def test_batch_needs_out(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        code, _, err = run(capsys, "batch", "a/b", str(tmp_path / "in.jsonl"))
        assert code == EXIT_USAGE
        assert "--out" in err

    @pytest.mark.parametrize("value", ["0", "-3", "many"])
    def test_batch_concurrency_must_be_positive(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str
    ) -> None:
        code, _, err = run(
            capsys, "batch", "a/b", "in.jsonl", "--out", str(tmp_path / "r"), "-c", value
        )
        assert code == EXIT_USAGE
        assert "--concurrency" in err

    def test_batch_will_not_overwrite_results_it_cannot_resume(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        (tmp_path / "in.jsonl").write_text('{"a": 1}\n')
        (tmp_path / "r.jsonl").write_text('{"line": 1, "status": "succeeded"}\n')
        code, _, err = run(
            capsys, "batch", "a/b", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "r.jsonl")
        )
        assert code == EXIT_USAGE
        assert "has no journal" in err
        assert "--restart" in err
        assert (tmp_path / "r.jsonl").read_text() == '{"line": 1, "status": "succeeded"}\n'

    def test_batch_refuses_a_journal_of_another_model(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        (tmp_path / "in.jsonl").write_text('{"a": 1}\n')
        (tmp_path / "r.jsonl.journal").write_text(
            '{"type":"batch","ref":"x/y","inputs":"in.jsonl",'
            '"time":"2026-01-01T00:00:00Z","version":1}\n'
        )
        code, _, err = run(
            capsys, "batch", "a/b", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "r.jsonl")
        )
        assert code == EXIT_USAGE
        assert "belongs to a batch of x/y" in err

    def test_batch_refuses_an_inputs_file_that_changed_under_a_started_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        inputs = tmp_path / "in.jsonl"
        inputs.write_text('{"a": 2}\n')
        (tmp_path / "r.jsonl.journal").write_text(
            f'{{"type":"batch","ref":"a/b","inputs":{json.dumps(str(inputs.resolve()))},'
            '"time":"2026-01-01T00:00:00Z","version":1}\n'
            '{"type":"intent","line":1,"input_sha256":"00","time":"2026-01-01T00:00:00Z"}\n'
        )
        code, _, err = run(capsys, "batch", "a/b", str(inputs), "--out", str(tmp_path / "r.jsonl"))
        assert code == EXIT_USAGE
        assert "line 1 of" in err
        assert "changed since this batch started" in err

    def test_batch_refuses_another_inputs_file_than_the_one_it_started_with(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        (tmp_path / "other.jsonl").write_text('{"a": 2}\n')
        (tmp_path / "r.jsonl.journal").write_text(
            '{"type":"batch","ref":"a/b","inputs":"/somewhere/in.jsonl",'
            '"time":"2026-01-01T00:00:00Z","version":2}\n'
            '{"type":"done","line":1,"input_sha256":"00"}\n'
        )
        (tmp_path / "r.jsonl").write_text('{"line":1,"status":"succeeded"}\n')
        code, _, err = run(
            capsys,
            "batch",
            "a/b",
            str(tmp_path / "other.jsonl"),
            "--out",
            str(tmp_path / "r.jsonl"),
        )
        assert code == EXIT_USAGE
        assert "is not the inputs file this batch was started with (/somewhere/in.jsonl" in err
        assert "--restart" in err
        assert "another --out" in err

    def test_predictions_get_needs_an_id(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "predictions", "get", "owner/model")
        assert code == EXIT_USAGE
        assert "not a prediction id" in err

    def test_an_unreachable_api_is_exit_3(self, capsys: pytest.CaptureFixture[str]) -> None:
        stamina.set_testing(True, attempts=1)  # no backoff between retries (reset by conftest)
        code, _, err = run(capsys, "predictions", "get", "abc123")
        assert code == EXIT_API
        assert "could not reach the API" in err
