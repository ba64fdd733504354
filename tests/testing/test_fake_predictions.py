"""The fake's prediction routes behave like Replicate's (docs/api-notes.md)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest

from areplicate._core.times import parse_timestamp
from areplicate.testing import FakeReplicate, FileOut, InstantClock, log

OAS_REQUIRED = {
    "id",
    "model",
    "version",
    "input",
    "output",
    "data_removed",
    "error",
    "status",
    "created_at",
    "urls",
}
INVALID_VERSION = {
    "title": "Invalid version or not permitted",
    "detail": "The specified version does not exist (or perhaps you don't have permission "
    "to use it?)",
    "status": 422,
}
NOT_FOUND = {"detail": "The requested resource could not be found.", "status": 404}


async def upper(text: str) -> str:
    return text.upper()


def seconds_between(a: str, b: str) -> float:
    return (parse_timestamp(b) - parse_timestamp(a)).total_seconds()


class TestCreate:
    async def test_the_three_version_forms_and_the_official_route(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        model = fake.add_model("acme/upper", upper)
        forms = [model.version_id, model.ref, "acme/upper"]
        for form in forms:
            reply = await http.post(
                f"{base_url}/predictions", json={"version": form, "input": {"text": "a"}}
            )
            assert reply.status == 201
            body = reply.json
            assert body.keys() >= OAS_REQUIRED
            assert body["model"] == "acme/upper"
            assert body["version"] == ("hidden" if form == "acme/upper" else model.version_id)
            assert body["status"] == "starting"
            assert body["logs"] == ""
            assert body["source"] == "api"
            assert body["metrics"] == {}
            assert body["urls"]["get"] == f"{base_url}/predictions/{body['id']}"
            assert body["urls"]["cancel"] == f"{base_url}/predictions/{body['id']}/cancel"
            assert "stream" not in body["urls"]
            assert reply.headers["ratelimit-remaining"] == "599"
            assert reply.headers["Location"] == body["urls"]["get"]
        reply = await http.post(
            f"{base_url}/models/acme/upper/predictions", json={"input": {"text": "b"}}
        )
        assert reply.status == 201
        assert reply.json["version"] == "hidden"
        assert fake.counts["POST /v1/predictions"] == 3
        assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 1

    async def test_community_models_need_a_version(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        model = fake.add_model("someone/thing", upper, official=False)
        reply = await http.post(
            f"{base_url}/models/someone/thing/predictions", json={"input": {"text": "x"}}
        )
        assert (reply.status, reply.json) == (404, NOT_FOUND)
        assert reply.content_type == "application/problem+json"
        reply = await http.post(
            f"{base_url}/predictions", json={"version": "someone/thing", "input": {"text": "x"}}
        )
        assert (reply.status, reply.json) == (422, INVALID_VERSION)
        reply = await http.post(
            f"{base_url}/predictions", json={"version": model.ref, "input": {"text": "x"}}
        )
        assert reply.status == 201

    @pytest.mark.parametrize(
        "version",
        ["0" * 64, "acme/upper:" + "0" * 64, "nobody/nothing", "not a ref", 42],
    )
    async def test_unknown_versions_are_422(
        self, fake: FakeReplicate, base_url: str, http: Any, version: object
    ) -> None:
        fake.add_model("acme/upper", upper)
        reply = await http.post(
            f"{base_url}/predictions", json={"version": version, "input": {"text": "x"}}
        )
        assert (reply.status, reply.json) == (422, INVALID_VERSION)
        assert fake.predictions == []

    async def test_a_version_of_another_model_is_refused(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        other = fake.add_model("acme/other", upper)
        fake.add_model("acme/upper", upper)
        reply = await http.post(
            f"{base_url}/predictions",
            json={"version": f"acme/upper:{other.version_id}", "input": {"text": "x"}},
        )
        assert (reply.status, reply.json) == (422, INVALID_VERSION)

    async def test_body_keys_are_checked(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        model = fake.add_model("acme/upper", upper)
        reply = await http.post(
            f"{base_url}/predictions",
            json={"version": model.version_id, "input": {"text": "x"}, "colour": "red"},
        )
        assert reply.status == 422
        assert reply.json["invalid_fields"] == [
            {
                "type": "additional_property_not_allowed",
                "field": "(root)",
                "description": "Additional property colour is not allowed",
            }
        ]
        reply = await http.post(f"{base_url}/predictions", json={"input": {}})
        assert reply.json["invalid_fields"][0]["description"] == "version is required"
        reply = await http.post(
            f"{base_url}/models/acme/upper/predictions",
            json={"version": model.version_id, "input": {"text": "x"}},
        )
        assert reply.status == 422, "the model route takes no version"
        reply = await http.post(
            f"{base_url}/predictions", json={"version": model.version_id, "input": "text"}
        )
        assert reply.json["invalid_fields"] == [
            {
                "type": "invalid_type",
                "field": "input",
                "description": "Invalid type. Expected: object, given: string",
            }
        ]
        reply = await http.post(f"{base_url}/predictions", data=b"{not json")
        assert reply.status == 400
        assert reply.content_type == "application/problem+json"
        assert fake.predictions == []

    async def test_input_validation_matches_the_api_form(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        async def draw(prompt: str, steps: int = 10, scheduler: str = "DDIM") -> str:
            return prompt

        fake.add_model(
            "acme/draw",
            draw,
            {
                "type": "object",
                "title": "Input",
                "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
                    "steps": {
                        "type": "integer",
                        "title": "Steps",
                        "x-order": 1,
                        "minimum": 1,
                        "maximum": 50,
                        "default": 10,
                    },
                    "scheduler": {
                        "allOf": [{"$ref": "#/components/schemas/scheduler"}],
                        "default": "DDIM",
                        "x-order": 2,
                    },
                },
            },
            components={
                "scheduler": {
                    "title": "scheduler",
                    "enum": ["DDIM", "K_EULER"],
                    "type": "string",
                    "description": "An enumeration.",
                }
            },
        )
        url = f"{base_url}/models/acme/draw/predictions"
        reply = await http.post(url, json={"input": {}})
        assert reply.status == 422
        assert reply.json == {
            "title": "Input validation failed",
            "detail": "- input: prompt is required\n",
            "status": 422,
            "invalid_fields": [
                {"type": "required", "field": "input", "description": "prompt is required"}
            ],
        }
        reply = await http.post(url, json={"input": {"prompt": 3, "steps": 0, "scheduler": "PNDM"}})
        assert reply.json["invalid_fields"] == [
            {
                "type": "invalid_type",
                "field": "input.prompt",
                "description": "Invalid type. Expected: string, given: integer",
            },
            {
                "type": "enum",
                "field": "input.scheduler",
                "description": 'input.scheduler must be one of the following: "DDIM", "K_EULER"',
            },
            {
                "type": "number_gte",
                "field": "input.steps",
                "description": "Must be greater than or equal to 1",
            },
        ]
        assert reply.json["detail"].count("\n") == 3
        reply = await http.post(url, json={"input": {"prompt": "ok", "steps": 50}})
        assert reply.status == 201
        assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 3
        assert len(fake.predictions) == 1

    async def test_schema_is_read_from_the_signature(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        def greet(name: str, times: int = 1) -> str:
            return " ".join([f"hi {name}"] * times)

        fake.add_model("acme/greet", greet)
        url = f"{base_url}/models/acme/greet/predictions"
        reply = await http.post(url, json={"input": {"times": "2"}})
        assert [f["field"] for f in reply.json["invalid_fields"]] == ["input", "input.times"]
        reply = await http.post(
            url,
            json={"input": {"name": "bo", "times": 2, "ignored": 1}},
            headers={"Prefer": "wait"},
        )
        assert reply.json["output"] == "hi bo hi bo"
        assert reply.json["input"] == {"name": "bo", "times": 2, "ignored": 1}
        model = await http.get(f"{base_url}/models/acme/greet")
        schema = model.json["latest_version"]["openapi_schema"]["components"]["schemas"]
        assert schema["Input"]["required"] == ["name"]
        assert schema["Input"]["properties"]["times"] == {
            "title": "Times",
            "x-order": 1,
            "type": "integer",
            "default": 1,
        }
        assert schema["Output"] == {"title": "Output", "type": "string"}


class TestLifecycle:
    async def test_starting_processing_succeeded(
        self, fake: FakeReplicate, base_url: str, http: Any, gate: Any
    ) -> None:
        async def slow(text: str) -> str:
            log("working")
            await gate.hold()
            return text * 2

        fake.add_model("acme/slow", slow)
        created = (
            await http.post(
                f"{base_url}/models/acme/slow/predictions", json={"input": {"text": "ab"}}
            )
        ).json
        assert created["status"] == "starting"
        assert "started_at" not in created
        await gate.started.wait()
        running = (await http.get(created["urls"]["get"])).json
        assert running["status"] == "processing"
        assert running["logs"] == "working\n"
        assert running["output"] is None
        assert "completed_at" not in running
        assert fake.running == 1
        gate.release.set()
        await fake.wait_idle()
        done = (await http.get(created["urls"]["get"])).json
        assert done["status"] == "succeeded"
        assert done["output"] == "abab"
        assert done["error"] is None
        assert set(done["metrics"]) == {"predict_time", "total_time"}
        assert done["metrics"]["total_time"] >= done["metrics"]["predict_time"] >= 0
        assert seconds_between(done["created_at"], done["started_at"]) >= 0
        assert seconds_between(done["started_at"], done["completed_at"]) >= 0
        assert fake.running == 0
        assert fake.prediction(created["id"]) == done

    async def test_an_exception_fails_the_prediction(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        def broken() -> None:
            log("about to fail")
            raise ValueError("the GPU caught fire")

        fake.add_model("acme/broken", broken)
        reply = await http.post(
            f"{base_url}/models/acme/broken/predictions",
            json={"input": {}},
            headers={"Prefer": "wait=5"},
        )
        assert reply.status == 201, "a failed prediction is not an HTTP error"
        body = reply.json
        assert (body["status"], body["error"], body["logs"]) == (
            "failed",
            "the GPU caught fire",
            "about to fail\n",
        )
        assert "predict_time" in body["metrics"]

    async def test_output_that_is_not_json_fails(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        fake.add_model("acme/odd", lambda: object())  # noqa: PLW0108 - a model function, not a class
        body = (
            await http.post(
                f"{base_url}/models/acme/odd/predictions",
                json={"input": {}},
                headers={"Prefer": "wait"},
            )
        ).json
        assert body["status"] == "failed"
        assert "not JSON serializable" in body["error"]

    async def test_generators_stream_and_functions_do_not(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        def words(n: int) -> Iterator[str]:
            for i in range(n):
                yield f"w{i}"

        async def numbers(n: int) -> AsyncIterator[dict[str, int]]:
            for i in range(n):
                yield {"i": i}

        fake.add_model("acme/words", words)
        fake.add_model("acme/numbers", numbers)
        for name, expected in [
            ("words", ["w0", "w1", "w2"]),
            ("numbers", [{"i": i} for i in range(3)]),
        ]:
            body = (
                await http.post(
                    f"{base_url}/models/acme/{name}/predictions",
                    json={"input": {"n": 3}},
                    headers={"Prefer": "wait"},
                )
            ).json
            assert body["output"] == expected
            assert body["urls"]["stream"] == f"{base_url}/streams/{body['id']}"
            version = (await http.get(f"{base_url}/models/acme/{name}")).json["latest_version"]
            output = version["openapi_schema"]["components"]["schemas"]["Output"]
            assert output["x-cog-array-type"] == "iterator"

    async def test_file_outputs_become_public_urls(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        def render() -> dict[str, Any]:
            return {"images": [FileOut(b"\x89PNG fake", "out-0.png")], "n": 1}

        fake.add_model("acme/render", render)
        body = (
            await http.post(
                f"{base_url}/models/acme/render/predictions",
                json={"input": {}},
                headers={"Prefer": "wait"},
            )
        ).json
        url = body["output"]["images"][0]
        assert url.startswith(f"{base_url}/delivery/")
        assert url.endswith("/out-0.png")
        file = await http.get(url, token=None)
        assert (file.status, file.body, file.content_type) == (200, b"\x89PNG fake", "image/png")
        assert file.headers["Cache-Control"] == "public,max-age=3600"
        missing = await http.get(url.replace("out-0.png", "other.png"), token=None)
        assert missing.status == 404

    async def test_logs_from_a_worker_thread(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        def blocking(n: int) -> int:
            log(f"thread {n}")
            return n

        async def offloaded(n: int) -> int:
            log("before")
            result = await asyncio.to_thread(blocking, n)
            log("after")
            return result

        fake.add_model("acme/offloaded", offloaded)
        body = (
            await http.post(
                f"{base_url}/models/acme/offloaded/predictions",
                json={"input": {"n": 7}},
                headers={"Prefer": "wait"},
            )
        ).json
        assert body["output"] == 7
        assert body["logs"] == "before\nthread 7\nafter\n"

    async def test_unknown_prediction_is_404(self, base_url: str, http: Any) -> None:
        for reply in (
            await http.get(f"{base_url}/predictions/nope"),
            await http.post(f"{base_url}/predictions/nope/cancel"),
        ):
            assert (reply.status, reply.json) == (404, NOT_FOUND)
            assert reply.content_type == "application/problem+json"

    async def test_deployments(self, fake: FakeReplicate, base_url: str, http: Any) -> None:
        model = fake.add_model("acme/upper", upper, official=False)
        fake.add_deployment("acme/prod", model="acme/upper")
        reply = await http.post(
            f"{base_url}/deployments/acme/prod/predictions",
            json={"input": {"text": "d"}},
            headers={"Prefer": "wait"},
        )
        body = reply.json
        assert (body["version"], body["deployment"], body["output"]) == (
            model.version_id,
            "acme/prod",
            "D",
        )
        missing = await http.post(
            f"{base_url}/deployments/acme/none/predictions", json={"input": {}}
        )
        assert (missing.status, missing.json) == (404, NOT_FOUND)
        info = (await http.get(f"{base_url}/deployments/acme/prod")).json
        assert info["current_release"]["version"] == model.version_id


class TestPreferWait:
    async def test_holds_until_terminal(
        self, fake: FakeReplicate, base_url: str, http: Any, gate: Any
    ) -> None:
        async def slow() -> str:
            await gate.hold()
            return "done"

        fake.add_model("acme/slow", slow)
        request = asyncio.create_task(
            http.post(
                f"{base_url}/models/acme/slow/predictions",
                json={"input": {}},
                headers={"Prefer": "wait=5"},
            )
        )
        await gate.started.wait()
        assert not request.done(), "the create is held while the model runs"
        gate.release.set()
        reply = await request
        assert reply.status == 201
        assert reply.headers["Preference-Applied"] == "wait=5"
        assert (reply.json["status"], reply.json["output"]) == ("succeeded", "done")
        assert fake.counts["GET /v1/predictions/{id}"] == 0

    async def test_returns_the_incomplete_prediction_when_time_runs_out(
        self, fake: FakeReplicate, base_url: str, http: Any, gate: Any
    ) -> None:
        async def slow() -> str:
            await gate.hold()
            return "never"

        fake.add_model("acme/slow", slow)
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await http.post(
            f"{base_url}/models/acme/slow/predictions",
            json={"input": {}},
            headers={"Prefer": "wait=1"},
        )
        assert loop.time() - start >= 1.0
        assert reply.headers["Preference-Applied"] == "wait=1"
        assert reply.json["status"] == "processing"
        gate.release.set()

    @pytest.mark.parametrize(("prefer", "applied"), [("wait", "wait"), ("wait=90", "wait=60")])
    async def test_bare_and_clamped_wait(
        self, fake: FakeReplicate, base_url: str, http: Any, prefer: str, applied: str
    ) -> None:
        fake.add_model("acme/upper", upper)
        reply = await http.post(
            f"{base_url}/models/acme/upper/predictions",
            json={"input": {"text": "q"}},
            headers={"Prefer": prefer},
        )
        assert reply.headers["Preference-Applied"] == applied
        assert reply.json["status"] == "succeeded"

    async def test_without_prefer_nothing_is_applied(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        fake.add_model("acme/upper", upper)
        reply = await http.post(
            f"{base_url}/models/acme/upper/predictions", json={"input": {"text": "q"}}
        )
        assert "Preference-Applied" not in reply.headers
        assert reply.json["status"] == "starting"


class TestCancel:
    async def test_cancel_mid_run_stops_the_callable(
        self, fake: FakeReplicate, base_url: str, http: Any, gate: Any
    ) -> None:
        async def slow() -> str:
            log("started")
            await gate.hold()
            return "never"

        fake.add_model("acme/slow", slow)
        created = (
            await http.post(f"{base_url}/models/acme/slow/predictions", json={"input": {}})
        ).json
        await gate.started.wait()
        reply = await http.post(created["urls"]["cancel"])
        assert reply.status == 200
        body = reply.json
        assert body["status"] == "canceled"
        assert body["output"] is None
        assert "completed_at" in body
        assert set(body["metrics"]) == {"predict_time", "total_time"}
        assert gate.cancelled.is_set(), "the model saw CancelledError before the answer"
        assert fake.running == 0
        again = await http.post(created["urls"]["cancel"])
        assert (again.status, again.json) == (200, body)

    async def test_cancel_while_starting(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        calls: list[int] = []
        fake.add_model("acme/cold", lambda: calls.append(1), boot_delay=30)
        created = (
            await http.post(f"{base_url}/models/acme/cold/predictions", json={"input": {}})
        ).json
        body = (await http.post(created["urls"]["cancel"])).json
        assert body["status"] == "canceled"
        assert "started_at" not in body
        assert body["metrics"].keys() == {"total_time"}
        assert calls == []

    async def test_cancelling_a_finished_prediction_changes_nothing(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        fake.add_model("acme/upper", upper)
        done = (
            await http.post(
                f"{base_url}/models/acme/upper/predictions",
                json={"input": {"text": "x"}},
                headers={"Prefer": "wait"},
            )
        ).json
        reply = await http.post(done["urls"]["cancel"])
        assert (reply.status, reply.json) == (200, done)


class TestCancelAfter:
    @pytest.mark.parametrize("value", ["soon", "4s", "0", "-10", "1x", "nan"])
    async def test_invalid_durations_are_422(
        self, fake: FakeReplicate, base_url: str, http: Any, value: str
    ) -> None:
        fake.add_model("acme/upper", upper)
        reply = await http.post(
            f"{base_url}/models/acme/upper/predictions",
            json={"input": {"text": "x"}},
            headers={"Cancel-After": value},
        )
        assert reply.status == 422
        assert reply.json["title"] == "Invalid Cancel-After header"
        assert fake.predictions == []

    @pytest.mark.parametrize(
        ("value", "seconds"), [("30s", 30), ("5m", 300), ("1h30m45s", 5445), ("90", 90)]
    )
    async def test_sets_the_deadline(
        self, fake: FakeReplicate, base_url: str, http: Any, value: str, seconds: int
    ) -> None:
        fake.add_model("acme/upper", upper)
        body = (
            await http.post(
                f"{base_url}/models/acme/upper/predictions",
                json={"input": {"text": "x"}},
                headers={"Cancel-After": value},
            )
        ).json
        assert seconds_between(body["created_at"], body["deadline"]) == pytest.approx(seconds)

    async def test_deadline_aborts_before_start_and_cancels_after(
        self, make_fake: Callable[..., FakeReplicate], http: Any, gate: Any
    ) -> None:
        """On a test clock the 5 s deadline passes at once (and before the 30 s boot)."""
        fake = make_fake(clock=InstantClock())
        calls: list[str] = []

        async def slow() -> str:
            await gate.hold()
            return "never"

        fake.add_model("acme/cold", lambda: calls.append("ran"), boot_delay=30)
        fake.add_model("acme/slow", slow)
        headers = {"Cancel-After": "5s", "Prefer": "wait=10"}
        async with fake.serve() as base_url:
            with anyio.fail_after(10):
                cold, warm = await asyncio.gather(
                    http.post(
                        f"{base_url}/models/acme/cold/predictions",
                        json={"input": {}},
                        headers=headers,
                    ),
                    http.post(
                        f"{base_url}/models/acme/slow/predictions",
                        json={"input": {}},
                        headers=headers,
                    ),
                )
        assert cold.json["status"] == "aborted"
        assert "started_at" not in cold.json
        assert calls == []
        assert warm.json["status"] == "canceled"
        assert gate.cancelled.is_set()
        for body in (cold.json, warm.json):
            assert seconds_between(body["created_at"], body["completed_at"]) >= 5
            assert seconds_between(body["deadline"], body["completed_at"]) >= 0


class TestList:
    async def test_pages_of_100_newest_first_with_absolute_links(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        fake.add_model("acme/upper", upper)
        ids = []
        for i in range(250):
            reply = await http.post(
                f"{base_url}/models/acme/upper/predictions", json={"input": {"text": str(i)}}
            )
            ids.append(reply.json["id"])
        pages = []
        url: str | None = f"{base_url}/predictions"
        while url is not None:
            page = (await http.get(url)).json
            pages.append(page)
            url = page["next"]
            if url is not None:
                assert url.startswith(f"{base_url}/predictions?cursor=")
        assert [len(p["results"]) for p in pages] == [100, 100, 50]
        seen = [r["id"] for p in pages for r in p["results"]]
        assert seen == ids[::-1]
        assert pages[0]["previous"] is None
        back = (await http.get(pages[2]["previous"])).json
        assert [r["id"] for r in back["results"]] == [r["id"] for r in pages[1]["results"]]
        assert fake.counts["GET /v1/predictions"] == 4

    async def test_cursors_are_opaque_and_checked(self, base_url: str, http: Any) -> None:
        reply = await http.get(f"{base_url}/predictions?cursor=bm90IGEgY3Vyc29y!!")
        assert (reply.status, reply.json) == (404, {"detail": "Invalid cursor", "status": 404})
        cursor = base64.b64encode(b"p=0").decode()
        empty = (await http.get(f"{base_url}/predictions", params={"cursor": cursor})).json
        assert empty == {"next": None, "previous": None, "results": []}

    async def test_created_after_and_before(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        fake.add_model("acme/upper", upper)
        bodies = [
            (
                await http.post(
                    f"{base_url}/models/acme/upper/predictions", json={"input": {"text": str(i)}}
                )
            ).json
            for i in range(5)
        ]
        middle = parse_timestamp(bodies[2]["created_at"])
        after = (middle - dt.timedelta(microseconds=1)).isoformat()
        page = (
            await http.get(
                f"{base_url}/predictions",
                params={"created_after": after, "created_before": bodies[4]["created_at"]},
            )
        ).json
        assert [r["id"] for r in page["results"]] == [bodies[3]["id"], bodies[2]["id"]]
        bad = await http.get(f"{base_url}/predictions", params={"created_after": "yesterday"})
        assert bad.status == 400

    async def test_public_base_url_is_used_in_links(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(
            public_base_url="https://api.replicate.com/v1",
            stream_base_url="https://stream.replicate.com/v1",
        )

        async def chat() -> AsyncIterator[str]:
            yield "hi"

        fake.add_model("acme/chat", chat)
        async with fake.serve() as base_url:
            for _ in range(101):
                body = (
                    await http.post(f"{base_url}/models/acme/chat/predictions", json={"input": {}})
                ).json
            assert body["urls"]["get"] == f"https://api.replicate.com/v1/predictions/{body['id']}"
            assert body["urls"]["stream"] == f"https://stream.replicate.com/v1/streams/{body['id']}"
            page = (await http.get(f"{base_url}/predictions")).json
            assert page["next"].startswith("https://api.replicate.com/v1/predictions?cursor=")


class TestServing:
    async def test_any_prefix(self, fake: FakeReplicate, http: Any) -> None:
        fake.add_model("acme/upper", upper)
        async with fake.serve(prefix="/replicate/v1") as base_url:
            assert base_url.endswith("/replicate/v1")
            reply = await http.post(
                f"{base_url}/models/acme/upper/predictions",
                json={"input": {"text": "x"}},
                headers={"Prefer": "wait"},
            )
            assert reply.json["urls"]["get"].startswith(f"{base_url}/predictions/")
        assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 1
        assert fake.base_url is None

    async def test_data_removed_after_ttl(
        self, make_fake: Callable[..., FakeReplicate], http: Any, eventually: Any
    ) -> None:
        fake = make_fake(data_ttl=0.5)

        def render(prompt: str) -> list[FileOut]:
            log("rendering")
            return [FileOut(b"img", "a.png")]

        fake.add_model("acme/render", render)
        async with fake.serve() as base_url:
            body = (
                await http.post(
                    f"{base_url}/models/acme/render/predictions",
                    json={"input": {"prompt": "p"}},
                    headers={"Prefer": "wait"},
                )
            ).json
            assert body["data_removed"] is False
            file_url = body["output"][0]

            async def removed() -> bool:
                return (await http.get(body["urls"]["get"])).json["data_removed"] is True

            await eventually(removed)
            after = (await http.get(body["urls"]["get"])).json
            assert (after["input"], after["output"], after["logs"]) == ({}, None, "")
            assert after["status"] == "succeeded"
            assert (await http.get(file_url, token=None)).status == 404

    async def test_requests_are_recorded_with_their_headers(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        await http.get(f"{base_url}/account", token="r8_secret")
        record = fake.requests[-1]
        assert (record.method, record.route, record.status) == ("GET", "GET /v1/account", 200)
        assert record.headers["Authorization"] == "Bearer r8_secret"

    def test_serve_in_thread(self, fake: FakeReplicate) -> None:
        import urllib.request

        fake.add_model("acme/upper", upper)
        with fake.serve_in_thread() as base_url:
            request = urllib.request.Request(
                f"{base_url}/models/acme/upper/predictions",
                data=b'{"input": {"text": "t"}}',
                headers={"Authorization": "Token r8_x", "Prefer": "wait"},
                method="POST",
            )
            with urllib.request.urlopen(request) as response:
                assert response.status == 201
        assert fake.predictions[0]["output"] == "T"
        assert fake.base_url is None


class TestAuth:
    async def test_missing_and_invalid_tokens(self, base_url: str, http: Any) -> None:
        reply = await http.get(f"{base_url}/predictions", token=None)
        assert (reply.status, reply.json) == (
            401,
            {
                "title": "Unauthenticated",
                "detail": "You did not pass an authentication token",
                "status": 401,
            },
        )
        assert reply.content_type == "application/problem+json"
        for header in ("Basic abc", "Bearer ", "r8_token"):
            reply = await http.get(
                f"{base_url}/predictions", token=None, headers={"Authorization": header}
            )
            assert reply.status == 401
            assert reply.json["detail"] == "You did not pass a valid authentication token"
        for header in ("Bearer r8_any", "Token r8_any", "bearer r8_any"):
            reply = await http.get(
                f"{base_url}/predictions", token=None, headers={"Authorization": header}
            )
            assert reply.status == 200

    async def test_a_configured_token_is_required(
        self, make_fake: Callable[..., FakeReplicate], http: Any
    ) -> None:
        fake = make_fake(token="r8_right")
        async with fake.serve() as base_url:
            assert (await http.get(f"{base_url}/account", token="r8_wrong")).status == 401
            assert (await http.get(f"{base_url}/account", token="r8_right")).status == 200
        assert fake.status_counts == {401: 1, 200: 1}
