"""``areplicate batch INPUTS.jsonl`` without REF: each line names its model, all run in one batch.

Three instant models are added to the shared fake: ``mixed/upper`` (run as ``owner/name``),
``mixed/length`` (as ``owner/name:VERSION``) and ``mixed/reverse`` (as a bare version id). Every
test gives its lines a ``tag`` of its own, so the fake's predictions can be told apart from other
tests' (the fake is shared by the whole session).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from areplicate._cli._journal import input_hash
from areplicate._core.times import format_timestamp

from .conftest import CREATE_KEY, Fake, run_cli
from .test_batch_once import invoke, latest, read_results, write_lines

__all__ = ["invoke"]  # the in-process CLI fixture, reused from test_batch_once (not a helper here)

PREDICTIONS_KEY = "POST /v1/predictions"  # creates by version


@attrs.frozen
class Models:
    """The three models' references, and what each returns for a text."""

    upper: str
    length: str
    reverse: str

    @property
    def refs(self) -> list[str]:
        return [self.upper, self.length, self.reverse]

    def expected(self, ref: str, text: str) -> Any:
        if ref == self.upper:
            return text.upper()
        if ref == self.length:
            return len(text)
        return text[::-1]


@pytest.fixture(scope="module")
def models(_fake_server: Fake) -> Models:
    def upper(text: str, tag: str = "") -> str:
        return text.upper()

    def length(text: str, tag: str = "") -> int:
        return len(text)

    def reverse(text: str, tag: str = "") -> str:
        return text[::-1]

    server = _fake_server.server
    server.add_model("mixed/upper", upper)
    length_model = server.add_model("mixed/length", length, official=False)
    reverse_model = server.add_model("mixed/reverse", reverse, official=False)
    return Models(
        upper="mixed/upper",
        length=f"mixed/length:{length_model.version_id}",
        reverse=reverse_model.version_id,
    )


def mixed_lines(models: Models, tag: str, per_model: int) -> list[str]:
    """``per_model`` lines for each model, interleaved; the three models' lines share their
    inputs (line 3k+1, 3k+2 and 3k+3 all send ``{"text": "t<k>", "tag": tag}``), so only the
    model tells the lines of an input apart."""
    return [
        json.dumps({"model": ref, "input": {"text": f"t{k}", "tag": tag}})
        for k in range(per_model)
        for ref in models.refs
    ]


def made(fake: Fake, tag: str) -> collections.Counter[tuple[str, str]]:
    """The fake's predictions of this test: (model, text) → how many were created."""
    return collections.Counter(
        (p["model"], p["input"]["text"])
        for p in fake.server.predictions
        if isinstance(p.get("input"), dict) and p["input"].get("tag") == tag
    )


def check_results(path: Path, lines: list[str], models: Models) -> dict[int, dict[str, Any]]:
    """Every line has exactly one result, naming its model, with that model's output."""
    results = latest(path)
    assert sorted(results) == list(range(1, len(lines) + 1))
    for number, raw in enumerate(lines, 1):
        line = json.loads(raw)
        result = results[number]
        assert result["model"] == line["model"], result
        assert result["status"] == "succeeded", result
        assert result["output"] == models.expected(line["model"], line["input"]["text"])
    assert len({r["id"] for r in results.values()}) == len(lines)
    return results


class TestMixedBatch:
    def test_three_models_in_one_batch_each_line_created_once_and_counted_per_model(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        tag = "three-models"
        lines = mixed_lines(models, tag, 20)
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        code, _, err = invoke(
            "batch", str(inputs), "--out", "r.jsonl", "-c", "16", cwd=tmp_path, url=fake.url
        )
        assert code == 0, err
        check_results(tmp_path / "r.jsonl", lines, models)
        assert made(fake, tag) == {
            (name, f"t{k}"): 1
            for name in ("mixed/upper", "mixed/length", "mixed/reverse")
            for k in range(20)
        }
        assert fake.server.counts[CREATE_KEY] == 20  # owner/name: the model's own route
        assert fake.server.counts[PREDICTIONS_KEY] == 40  # by version
        # The summary counts each model apart, under the reference its lines gave.
        for ref in models.refs:
            assert f"{ref}: 20 (20 succeeded)" in err
        assert "Done: 60 of 60 (60 succeeded, 0 did not)" in err

        # The journal records each line's model with its intent.
        journal = [json.loads(x) for x in (tmp_path / "r.jsonl.journal").read_text().splitlines()]
        assert journal[0]["ref"] is None
        assert journal[0]["version"] == 3
        intents = {r["line"]: r["model"] for r in journal if r["type"] == "intent"}
        assert intents == {n: json.loads(raw)["model"] for n, raw in enumerate(lines, 1)}

        # A re-run finds everything done and creates nothing.
        code, _, err = invoke("batch", str(inputs), "--out", "r.jsonl", cwd=tmp_path, url=fake.url)
        assert code == 0, err
        assert "Resuming: 60 of 60 already done, 0 left" in err
        assert sum(made(fake, tag).values()) == 60

    @pytest.mark.parametrize("hook", ["created", "intent"])
    def test_a_crash_then_a_rerun_creates_each_line_once_on_its_own_model(
        self, fake: Fake, models: Models, tmp_path: Path, hook: str
    ) -> None:
        # The three models' lines share inputs: the re-run's lookup of creates whose ids were
        # never journaled must tell them apart by each line's own model.
        tag = f"mixed-crash-{hook}"
        lines = mixed_lines(models, tag, 20)
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        args = ["batch", str(inputs), "--out", "r.jsonl", "-c", "8"]
        crashed = run_cli(args, fake=fake, cwd=tmp_path, crash_at=(hook, 25))
        assert crashed.returncode == 137, crashed.stderr
        assert 0 < len(read_results(tmp_path / "r.jsonl")) < 60

        resumed = run_cli(args, fake=fake, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "Resuming:" in resumed.stderr
        check_results(tmp_path / "r.jsonl", lines, models)
        # The closing lines count each model over both runs (the cost, this run's only).
        assert "By model, all runs:" in resumed.stderr
        for ref in models.refs:
            assert f"  {ref}: 20 (20 succeeded)\n" in resumed.stderr
        counts = made(fake, tag)
        assert sorted(counts.values()) == [1] * 60  # nothing created twice
        assert len(counts) == 60

    def test_a_line_whose_model_was_edited_runs_again_with_a_warning(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        tag = "mixed-edit"
        lines = mixed_lines(models, tag, 2)
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        args = ["batch", str(inputs), "--out", "r.jsonl"]
        assert invoke(*args, cwd=tmp_path, url=fake.url)[0] == 0
        edited = json.loads(lines[0])
        edited["model"] = models.reverse  # same input, another model
        lines[0] = json.dumps(edited)
        write_lines(inputs, lines)
        code, _, err = invoke(*args, cwd=tmp_path, url=fake.url)
        assert code == 0, err
        assert "warning: 1 line(s)" in err
        assert "(line 1)" in err
        check_results(tmp_path / "r.jsonl", lines, models)
        assert made(fake, tag)[("mixed/reverse", "t0")] == 2  # line 1 now, and line 3 before
        assert sum(made(fake, tag).values()) == 7

    def test_a_lost_create_is_looked_up_on_the_lines_own_model(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        # Line 1's create (on mixed/upper) was journaled as an intent and its answer lost. Just
        # after it, the same input ran on another model (another batch): that prediction is the
        # closest in time with the same input, but is not line 1's.
        tag = "mixed-lookup"
        line = {"model": models.upper, "input": {"text": "twin", "tag": tag}}
        intent_time = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        other = write_lines(
            tmp_path / "other.jsonl", [json.dumps({**line, "model": models.reverse})]
        )
        assert invoke("batch", str(other), "-o", "o.jsonl", cwd=tmp_path, url=fake.url)[0] == 0
        inputs = write_lines(tmp_path / "in.jsonl", [json.dumps(line)])
        records = [
            {"type": "batch", "ref": None, "inputs": str(inputs.resolve()),
             "time": format_timestamp(intent_time), "version": 3},
            {"type": "intent", "line": 1, "input_sha256": input_hash(line),
             "time": format_timestamp(intent_time), "model": models.upper},
        ]  # fmt: skip
        (tmp_path / "r.jsonl.journal").write_text("".join(json.dumps(r) + "\n" for r in records))
        code, _, err = invoke("batch", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url)
        assert code == 0, err
        assert "(1 to look up first)" in err
        assert read_results(tmp_path / "r.jsonl")[0]["output"] == "TWIN"
        assert made(fake, tag) == {("mixed/reverse", "twin"): 1, ("mixed/upper", "twin"): 1}


class TestJournalOfAnotherKind:
    def test_a_mixed_journal_is_refused_to_a_single_model_run_unless_restart(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", mixed_lines(models, "mixed-then-one", 1))
        assert invoke("batch", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url)[0] == 0
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 2, err
        assert "belongs to a batch of mixed models (each line names its model)" in err
        assert "without a model on the command line" in err
        assert "--restart" in err
        assert sum(made(fake, "mixed-then-one").values()) == 3

        # With --restart it runs as asked: the lines name their model, so they are refused as
        # inputs of demo/echo rather than sent to it.
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "-o", "r.jsonl", "--restart",
            cwd=tmp_path, url=fake.url,
        )  # fmt: skip
        assert code == 1, err
        results = latest(tmp_path / "r.jsonl")
        assert [r["status"] for r in results.values()] == ["invalid"] * 3
        assert "names its own model" in results[1]["error"]
        assert "leave REF out" in results[1]["error"]
        assert sum(made(fake, "mixed-then-one").values()) == 3

    def test_a_single_model_journal_is_refused_to_a_mixed_run_unless_restart(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "one-then-mixed"})])
        assert (
            invoke("batch", "demo/echo", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url)[
                0
            ]
            == 0
        )
        code, _, err = invoke("batch", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url)
        assert code == 2, err
        assert "belongs to a batch of demo/echo, not of mixed models" in err
        assert "areplicate batch demo/echo INPUTS.jsonl" in err
        assert fake.creates() == 1

        write_lines(inputs, mixed_lines(models, "one-then-mixed", 1))
        code, _, err = invoke(
            "batch", str(inputs), "-o", "r.jsonl", "--restart", cwd=tmp_path, url=fake.url
        )
        assert code == 0, err
        check_results(tmp_path / "r.jsonl", mixed_lines(models, "one-then-mixed", 1), models)

    def test_a_version_2_single_model_journal_still_resumes(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(
            tmp_path / "in.jsonl", [json.dumps({"text": f"v2 {n}"}) for n in range(3)]
        )
        header = {
            "type": "batch",
            "ref": "demo/echo",
            "inputs": str(inputs.resolve()),
            "time": "2026-01-02T03:04:05Z",
            "version": 2,
        }
        (tmp_path / "r.jsonl.journal").write_text(json.dumps(header) + "\n")
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 0, err
        assert fake.creates() == 3
        assert all("model" not in r for r in read_results(tmp_path / "r.jsonl"))


class TestInvalidLines:
    def test_each_bad_line_is_invalid_with_its_number_and_the_rest_run(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        tag = "mixed-invalid"
        good = {"text": "ok", "tag": tag}
        lines = [
            json.dumps({"model": models.upper, "input": good}),
            json.dumps({"input": good}),
            json.dumps({"model": models.upper, "input": good, "lifetime": "5m"}),
            json.dumps({"model": "not a model", "input": good}),
            json.dumps({"model": models.upper, "input": "ok"}),
            json.dumps({"model": 7, "input": good}),
            json.dumps(["mixed/upper", good]),
            "{not json",
            json.dumps({"model": "nobody/nothing", "input": good}),
            json.dumps({"model": models.length, "input": good}),
            json.dumps({"model": "nobody/nothing", "input": {**good, "text": "again"}}),
        ]
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        code, _, err = invoke(
            "batch", str(inputs), "-o", "r.jsonl", "-c", "1", cwd=tmp_path, url=fake.url
        )
        assert code == 1, err
        results = latest(tmp_path / "r.jsonl")
        assert sorted(results) == list(range(1, 12))
        assert {n: r["status"] for n, r in results.items()} == {
            1: "succeeded",
            2: "invalid",
            3: "invalid",
            4: "invalid",
            5: "invalid",
            6: "invalid",
            7: "invalid",
            8: "invalid",
            9: "error",
            10: "succeeded",
            11: "error",
        }
        errors = {n: r["error"] for n, r in results.items()}
        assert errors[2].startswith("line 2 names no model")
        assert "areplicate batch REF INPUTS.jsonl" in errors[2]
        assert errors[3].startswith("line 3 has unknown key(s) 'lifetime'")
        assert errors[4].startswith("line 4: invalid model reference 'not a model'")
        assert errors[5].startswith('line 5: "input" must be an object')
        assert errors[6].startswith('line 6: "model" must be a string')
        assert errors[7].startswith("line 7 is a JSON array, not {")
        assert errors[8].startswith("line 8 is not valid JSON")
        # An unknown model fails its own lines, not the batch; its second line is not sent.
        assert "model nobody/nothing was not found" in errors[9]
        assert errors[11] == errors[9]
        assert {n: r["model"] for n, r in results.items()} == {
            1: models.upper,
            2: None,
            3: models.upper,
            4: "not a model",
            5: models.upper,
            6: None,
            7: None,
            8: None,
            9: "nobody/nothing",
            10: models.length,
            11: "nobody/nothing",
        }
        assert fake.server.counts["POST /v1/models/{owner}/{name}/predictions"] == 2  # 1 and 9
        assert made(fake, tag) == {("mixed/upper", "ok"): 1, ("mixed/length", "ok"): 1}
        # Per model, invalid lines included (under the model they named, if any).
        assert f"{models.upper}: 3 (2 invalid, 1 succeeded)" in err
        assert f"{models.length}: 1 (1 succeeded)" in err
        assert "nobody/nothing: 2 (2 error)" in err
        assert "(no model): 4 (4 invalid)" in err

    def test_with_ref_a_line_naming_its_model_is_refused_and_other_model_keys_are_inputs(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        lines = [
            json.dumps({"model": "demo/pixel", "input": {"text": "wrapped"}}),
            json.dumps({"model": "dev", "text": "an input named model"}),
        ]
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        code, _, err = invoke(
            "batch", "demo/echo", str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 1, err
        results = latest(tmp_path / "r.jsonl")
        assert results[1]["status"] == "invalid"
        assert results[1]["error"] == (
            'line 1 names its own model ("demo/pixel"), but the command line gives demo/echo: '
            "leave REF out to run each line on its own model, or make the line the input itself "
            "to run it on REF"
        )
        assert results[2]["output"] == {"model": "dev", "text": "an input named model"}
        assert fake.creates() == 1


class TestCommandLine:
    def test_one_positional_that_reads_as_a_model_and_is_no_file_says_the_inputs_are_missing(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        code, _, err = invoke("batch", "demo/echo", "-o", "r.jsonl", cwd=tmp_path, url=fake.url)
        assert code == 2
        assert "no inputs file: demo/echo is not a file but reads as a model reference" in err
        assert "areplicate batch demo/echo INPUTS.jsonl" in err

    def test_a_missing_inputs_file_alone_is_a_missing_file(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        code, _, err = invoke("batch", "data/in.jsonl", "-o", "r.jsonl", cwd=tmp_path, url=fake.url)
        assert code == 2
        assert "cannot read inputs file data/in.jsonl" in err

    def test_two_files_is_a_clear_error(self, invoke: Any, fake: Fake, tmp_path: Path) -> None:
        write_lines(tmp_path / "a.jsonl", ['{"text": "x"}'])
        code, _, err = invoke(
            "batch", "a.jsonl", "b.jsonl", "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 2
        assert "a.jsonl is a file, not a model reference" in err

    def test_ref_then_an_option_then_the_inputs_is_still_a_single_model_batch(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        inputs = write_lines(tmp_path / "in.jsonl", ['{"text": "interleaved"}'])
        code, _, err = invoke(
            "batch", "demo/echo", "-o", "r.jsonl", str(inputs), cwd=tmp_path, url=fake.url
        )
        assert code == 0, err
        assert read_results(tmp_path / "r.jsonl")[0]["output"] == {"text": "interleaved"}


class TestOptions:
    def test_validate_checks_each_line_against_its_own_models_schema_fetched_once_per_model(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        tag = "mixed-validate"
        # (A bare version id cannot be validated: the API serves schemas under the model.)
        lines = [x for x in mixed_lines(models, tag, 5) if json.loads(x)["model"] != models.reverse]
        lines.append(json.dumps({"model": models.upper, "input": {"tag": tag}}))  # no text
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        code, _, err = invoke(
            "batch", str(inputs), "-o", "r.jsonl", "--validate", cwd=tmp_path, url=fake.url
        )
        assert code == 1, err
        results = latest(tmp_path / "r.jsonl")
        assert results[11]["status"] == "error"
        assert "text" in results[11]["error"]
        assert sum(made(fake, tag).values()) == 10
        schema_reads = {
            k: n for k, n in fake.server.counts.items() if k.startswith("GET /v1/models")
        }
        assert sum(schema_reads.values()) == 2, schema_reads  # once per model

    def test_download_saves_each_models_files_named_by_line(
        self, invoke: Any, fake: Fake, tmp_path: Path
    ) -> None:
        lines = [
            json.dumps({"model": "demo/pixel", "input": {"prompt": "mixed llama"}}),
            json.dumps({"model": "demo/echo", "input": {"text": "no files"}}),
        ]
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        code, _, err = invoke(
            "batch", str(inputs), "-o", "r.jsonl", "--download", "out", cwd=tmp_path, url=fake.url
        )
        assert code == 0, err
        results = latest(tmp_path / "r.jsonl")
        assert results[1]["model"] == "demo/pixel"
        assert results[1]["files"] == [str(Path("out") / "1-out-0.png")]
        assert (tmp_path / "out" / "1-out-0.png").read_bytes().startswith(b"\x89PNG")
        assert results[2]["files"] == []


class TestSummary:
    def test_a_single_model_batch_counts_every_line_under_the_reference_it_was_given(
        self, invoke: Any, fake: Fake, models: Models, tmp_path: Path
    ) -> None:
        # The API names the model (owner/name) even of a create by version; the summary keeps
        # the reference the batch was given, and counts lines that ended in an error too.
        lines = [
            json.dumps({"text": "one", "tag": "summary"}),
            json.dumps({"text": "two", "tag": "summary"}),
            "[1]",
            json.dumps({"text": 3, "tag": "summary"}),  # rejected by the model's schema: a 422
        ]
        inputs = write_lines(tmp_path / "in.jsonl", lines)
        code, _, err = invoke(
            "batch", models.length, str(inputs), "-o", "r.jsonl", cwd=tmp_path, url=fake.url
        )
        assert code == 1, err
        assert latest(tmp_path / "r.jsonl")[4]["status"] == "error"
        assert f"Cost: {models.length}: 4 (2 succeeded, 1 error, 1 invalid)" in err
        assert "mixed/length: " not in err
