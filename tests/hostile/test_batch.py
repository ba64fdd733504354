"""``areplicate batch`` against a server that answers creates it did process with bodies nobody can
read: the batch looks the prediction up and re-attaches; it never records ``"id": null`` for a
billed prediction, and never creates it again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stamina

from areplicate._cli import batch as batch_module
from areplicate._cli import main
from areplicate._errors import UnexpectedResponseError
from areplicate._services.predictions import Predictions
from tests.hostile.server import (
    TOKEN,
    Hostile,
    created,
    json_response,
    prediction_body,
    problem,
    sequence,
)

CREATE = "/v1/models/acme/m/predictions"
LIST = "/v1/predictions"


@pytest.fixture
def server() -> Iterator[Hostile]:
    """A hostile server on a loop of its own thread, so the CLI can run its own loop here."""
    loop = asyncio.new_event_loop()
    hostile = Hostile()
    started = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with hostile:
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10), "the hostile server did not start"
    try:
        yield hostile
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def run_batch(
    server: Hostile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run ``areplicate batch acme/m`` in this process against the hostile server."""
    # The lookup waits for failed creates to show up; this server's answers are already there.
    monkeypatch.setattr(batch_module, "_SETTLE", 0.2, raising=False)
    stamina.set_testing(True, attempts=3)  # retries without backoff (reset by the suite)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.setenv("REPLICATE_BASE_URL", server.url)

    def run(tmp_path: Path, lines: list[dict[str, Any]]) -> tuple[int, str, dict[int, Any]]:
        inputs = tmp_path / "in.jsonl"
        inputs.write_text("".join(json.dumps(line) + "\n" for line in lines))
        monkeypatch.chdir(tmp_path)
        code = main(["batch", "acme/m", str(inputs), "--out", "r.jsonl", "-c", "2"])
        _, err = capsys.readouterr()
        results = {}
        for text in (tmp_path / "r.jsonl").read_text().splitlines():
            result = json.loads(text)
            results[result["line"]] = result
        return code, err, results

    return run


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _listing(*predictions: dict[str, Any]) -> dict[str, Any]:
    return {"results": list(predictions), "next": None, "previous": None}


def _script_lost_create(server: Hostile, answer: Any) -> None:
    """The create happens (p1 exists, listed) but its answer is ``answer``."""
    body = prediction_body("p1", input={"text": "hello"}, output="hi", created_at=_now())
    server.on("POST", CREATE, answer)
    server.on("GET", LIST, json_response(_listing(body)))
    server.on("GET", "/v1/predictions/p1", json_response(body))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(created(b"<html>created, honest</html>"), id="non-JSON 201"),
        pytest.param(created({"status": "starting"}), id="201 without id"),
        pytest.param(created(b'{"id": "p1", "status": "star'), id="truncated 201"),
    ],
)
def test_an_unreadable_create_answer_is_looked_up_and_reattached(
    server: Hostile, run_batch: Any, tmp_path: Path, answer: Any
) -> None:
    # Needs the session to flag these errors as maybe_created.
    _script_lost_create(server, answer)
    code, err, results = run_batch(tmp_path, [{"text": "hello"}])
    assert code == 0, err
    assert results[1]["id"] == "p1"
    assert results[1]["status"] == "succeeded"
    assert results[1]["output"] == "hi"
    assert server.count("POST", CREATE) == 1


def test_any_maybe_created_error_takes_the_lookup_path(
    server: Hostile, run_batch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch's side alone: an error flagged maybe_created (as the session flags an
    # unreadable 2xx to a create) is looked up, whatever its class.
    real_create = Predictions.create

    async def create(self: Predictions, *args: Any, **kwargs: Any) -> Any:
        try:
            return await real_create(self, *args, **kwargs)
        except UnexpectedResponseError as exc:
            exc.mark_maybe_created()
            raise

    monkeypatch.setattr(Predictions, "create", create)
    _script_lost_create(server, created(b"<html>created, honest</html>"))
    code, err, results = run_batch(tmp_path, [{"text": "hello"}])
    assert code == 0, err
    assert results[1]["id"] == "p1"
    assert results[1]["status"] == "succeeded"
    assert server.count("POST", CREATE) == 1


def test_a_create_whose_lookup_failed_once_is_found_by_the_next_look(
    server: Hostile, run_batch: Any, tmp_path: Path
) -> None:
    body = prediction_body("p1", input={"text": "hello"}, output="hi", created_at=_now())
    server.on("POST", CREATE, problem(503, "Service Unavailable"))
    # The first lookup fails (a 500); a later one finds it.
    fail = problem(500, "Internal Server Error")
    server.on("GET", LIST, sequence(fail, json_response(_listing(body))))
    server.on("GET", "/v1/predictions/p1", json_response(body))
    code, err, results = run_batch(tmp_path, [{"text": "hello"}])
    assert code == 0, err
    assert results[1]["id"] == "p1"
    assert server.count("POST", CREATE) == 1


def test_a_lookup_that_keeps_failing_creates_nothing_again(
    server: Hostile, run_batch: Any, tmp_path: Path
) -> None:
    server.on("POST", CREATE, problem(500, "Internal Server Error"))
    server.on("GET", LIST, problem(500, "Internal Server Error"))
    code, err, results = run_batch(tmp_path, [{"text": "hello"}])
    assert code == 3, err
    assert "left unconfirmed" in err
    assert results == {}  # nothing recorded: the line is left for a re-run, not failed
    assert server.count("POST", CREATE) == 1

    _script_lost_create(server, problem(500, "Internal Server Error"))
    code, err, results = run_batch(tmp_path, [{"text": "hello"}])
    assert code == 0, err
    assert "(1 to look up first)" in err
    assert results[1]["id"] == "p1"
    assert server.count("POST", CREATE) == 1
