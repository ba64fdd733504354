"""Files, models, account routes, the demo models, the pytest fixtures and the command line."""

from __future__ import annotations

import asyncio
import hashlib
import json
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import jsonschema
import pytest

from areplicate.testing import FakeReplicate, RequestRecord, add_demo_models


class TestFiles:
    async def test_upload_get_list_download_delete(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        form = aiohttp.FormData()
        form.add_field("content", b"hello", filename="a.txt", content_type="text/plain")
        form.add_field("metadata", json.dumps({"k": 1}))
        reply = await http.post(f"{base_url}/files", data=form)
        assert reply.status == 201
        body = reply.json
        assert {k: body[k] for k in ("name", "content_type", "size", "metadata")} == {
            "name": "a.txt",
            "content_type": "text/plain",
            "size": 5,
            "metadata": {"k": 1},
        }
        assert body["etag"] == body["checksums"]["md5"] == hashlib.md5(b"hello").hexdigest()
        assert body["checksums"]["sha256"] == hashlib.sha256(b"hello").hexdigest()
        assert body["urls"]["get"] == f"{base_url}/files/{body['id']}"
        assert (await http.get(body["urls"]["get"])).json == body
        assert (await http.get(f"{base_url}/files")).json["results"] == [body]
        download = await http.get(fake.file_download_url(body["id"]))
        assert (download.body, download.content_type) == (b"hello", "application/octet-stream")
        deleted = await http.delete(body["urls"]["get"])
        assert (deleted.status, deleted.body) == (204, b"")
        missing = await http.get(body["urls"]["get"])
        assert (missing.status, missing.json) == (404, {"detail": "File not found", "status": 404})

    async def test_fields_override_the_part_and_metadata_may_be_a_json_part(
        self, base_url: str, http: Any
    ) -> None:
        form = aiohttp.FormData()
        form.add_field("content", b"{}", filename="blob")
        form.add_field("filename", "data.json")
        form.add_field("type", "application/json")
        form.add_field(
            "metadata", b'{"source": "js"}', filename="blob", content_type="application/json"
        )
        body = (await http.post(f"{base_url}/files", data=form)).json
        assert (body["name"], body["content_type"], body["metadata"]) == (
            "data.json",
            "application/json",
            {"source": "js"},
        )

    async def test_bad_uploads(self, make_fake: Callable[..., FakeReplicate], http: Any) -> None:
        fake = make_fake(max_upload_size=10)
        async with fake.serve() as base_url:
            big = aiohttp.FormData()
            big.add_field("content", b"x" * 11, filename="big.bin")
            reply = await http.post(f"{base_url}/files", data=big)
            assert (reply.status, reply.json["detail"]) == (
                413,
                "Files must be less than 100MB in size",
            )
            none = aiohttp.FormData(default_to_multipart=True)
            none.add_field("filename", "x.txt")
            none.add_field("other", "y")
            assert (await http.post(f"{base_url}/files", data=none)).status == 422
            assert (await http.post(f"{base_url}/files", json={"content": "x"})).status == 400
        assert fake.requests[0].status == 413


class TestModelsAndAccount:
    async def test_model_and_versions(self, fake: FakeReplicate, base_url: str, http: Any) -> None:
        async def v1(text: str) -> str:
            return text

        async def v2(text: str, loud: bool = False) -> str:
            return text

        first = fake.add_model("acme/text", v1, description="Echoes text.")
        second = fake.add_model("acme/text", v2, description="Echoes text.")
        assert first.version_id != second.version_id
        model = (await http.get(f"{base_url}/models/acme/text")).json
        assert model["latest_version"]["id"] == second.version_id
        assert model["is_official"] is True
        assert model["description"] == "Echoes text."
        versions = (await http.get(f"{base_url}/models/acme/text/versions")).json
        assert [v["id"] for v in versions["results"]] == [second.version_id, first.version_id]
        one = (await http.get(f"{base_url}/models/acme/text/versions/{first.version_id}")).json
        assert one["openapi_schema"]["components"]["schemas"]["Input"]["required"] == ["text"]
        assert one["openapi_schema"]["info"]["title"] == "Cog"
        assert (await http.get(f"{base_url}/models/acme/text/versions/{'0' * 64}")).status == 404
        assert (await http.get(f"{base_url}/models/acme/none")).status == 404
        listed = (await http.get(f"{base_url}/models")).json
        assert [m["name"] for m in listed["results"]] == ["text"]
        old = await http.post(
            f"{base_url}/predictions",
            json={"version": first.version_id, "input": {"text": "t", "loud": True}},
            headers={"Prefer": "wait"},
        )
        assert old.json["output"] == "t", "old versions keep running"
        assert first.calls == 1
        assert second.calls == 0

    def test_version_ids_are_stable_and_64_hex(
        self, make_fake: Callable[..., FakeReplicate]
    ) -> None:
        ids = [make_fake().add_model("a/b", lambda: 1).version_id for _ in range(2)]
        assert ids[0] == ids[1]
        assert len(ids[0]) == 64
        assert int(ids[0], 16) >= 0

    def test_bad_registrations(self, fake: FakeReplicate) -> None:
        with pytest.raises(ValueError, match="owner/name"):
            fake.add_model("just-a-name", lambda: 1)
        with pytest.raises(ValueError, match="not a valid JSON schema"):
            fake.add_model("a/b", lambda: 1, {"type": "objekt"})
        with pytest.raises(KeyError, match="add_model"):
            fake.add_deployment("a/dep", model="a/missing")

    async def test_account_hardware_secret(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        account = (await http.get(f"{base_url}/account")).json
        assert account["type"] in ("user", "organization")
        hardware = (await http.get(f"{base_url}/hardware")).json
        assert isinstance(hardware, list)
        assert {"sku": "gpu-t4", "name": "Nvidia T4 GPU"} in hardware
        secret = (await http.get(f"{base_url}/webhooks/default/secret")).json
        assert secret == {"key": fake.webhook_secret}


class TestDemo:
    async def test_demo_models(self, fake: FakeReplicate, base_url: str, http: Any) -> None:
        add_demo_models(fake)

        async def run(name: str, value: dict[str, Any]) -> dict[str, Any]:
            reply = await http.post(
                f"{base_url}/models/{name}/predictions",
                json={"input": value},
                headers={"Prefer": "wait=10"},
            )
            return reply.json  # type: ignore[no-any-return]

        chat = await run("demo/chat", {"max_words": 3})
        assert "".join(chat["output"]) == "Llamas are gentle,"
        assert "stream" in chat["urls"]
        assert (await run("demo/echo", {"a": [1, 2]}))["output"] == {"a": [1, 2]}
        pixel = await run("demo/pixel", {"prompt": "p", "size": 4})
        png = await http.get(pixel["output"][0], token=None)
        assert png.body.startswith(b"\x89PNG\r\n\x1a\n")
        assert (await run("demo/flaky", {"seed": 3}))["status"] == "succeeded"
        failed = await run("demo/flaky", {"seed": 10})
        assert failed["status"] == "failed"
        assert "divisible by 5" in failed["error"]
        assert (await run("demo/sleep", {"seconds": 0.01}))["output"] == 0.01
        assert (await run("demo/sleep", {"seconds": -1}))["invalid_fields"][0]["field"] == (
            "input.seconds"
        )


class TestPluginFixtures:
    async def test_fake_replicate_url_serves_the_fake(
        self, fake_replicate: FakeReplicate, fake_replicate_url: str, http: Any
    ) -> None:
        fake_replicate.add_model("acme/one", lambda: 1)
        reply = await http.post(
            f"{fake_replicate_url}/models/acme/one/predictions",
            json={"input": {}},
            headers={"Prefer": "wait"},
        )
        assert reply.json["output"] == 1
        assert fake_replicate.base_url == fake_replicate_url

    def test_thread_fixture(
        self, fake_replicate: FakeReplicate, fake_replicate_thread_url: str
    ) -> None:
        import urllib.request

        request = urllib.request.Request(
            f"{fake_replicate_thread_url}/hardware", headers={"Authorization": "Bearer r8_t"}
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        assert fake_replicate.counts["GET /v1/hardware"] == 1


PLUGIN_SYNC_TEST = """
import json, urllib.request

def test_url(fake_replicate, fake_replicate_url):
    fake_replicate.add_model("a/b", lambda: 1)
    request = urllib.request.Request(
        fake_replicate_url + "/models/a/b/predictions",
        data=b'{"input": {}}',
        headers={"Authorization": "Bearer r8_x", "Prefer": "wait"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert json.load(response)["output"] == 1
"""


@pytest.mark.slow
def test_the_plugin_without_pytest_asyncio(tmp_path: pathlib.Path) -> None:
    """The entry point loads in every pytest run; without pytest-asyncio it serves from a thread.

    (With pytest-asyncio, as in this suite, TestPluginFixtures covers it.)
    """
    (tmp_path / "test_user.py").write_text(PLUGIN_SYNC_TEST)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"]
    result = subprocess.run(
        [*command, "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


class TestCommandLine:
    async def test_standalone_server(self, http: Any) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "areplicate.testing",
            "--port",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            assert line.startswith("Fake Replicate API at http://127.0.0.1:")
            base_url = line.split(" at ")[1].strip()
            model = (await http.get(f"{base_url}/models/demo/chat")).json
            assert model["name"] == "chat"
            stats = (await http.get(f"{base_url}/_fake/stats", token=None)).json
            assert stats["counts"] == {"GET /v1/models/{owner}/{name}": 1}
            assert stats["statuses"] == {"200": 1}
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 20)
        assert code == 0

    def test_bad_arguments(self) -> None:
        from areplicate.testing.__main__ import main

        with pytest.raises(SystemExit) as info:
            main(["--drop-rate", "2"])
        assert info.value.code == 2


ALLOWED_IMPORTS = {"aiohttp", "attrs", "jsonschema", "pytest", "pytest_asyncio"}


def test_the_fake_imports_no_client_code() -> None:
    """The fake builds its own JSON: from areplicate it may use only _core, _errors and itself."""
    import ast

    import areplicate.testing

    package = pathlib.Path(areplicate.testing.__file__).parent
    checked = 0
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                checked += 1
                top = name.split(".")[0]
                if top == "areplicate":
                    assert name.startswith(
                        ("areplicate._core", "areplicate._errors", "areplicate.testing")
                    ), f"{path.name} imports {name}"
                else:
                    assert top in ALLOWED_IMPORTS or top in sys.stdlib_module_names, (
                        f"{path.name} imports {name}"
                    )
    assert checked > 50


async def test_non_finite_output_fails(fake: FakeReplicate, base_url: str, http: Any) -> None:
    fake.add_model("acme/nan", lambda: [1.0, float("nan")])
    body = (
        await http.post(
            f"{base_url}/models/acme/nan/predictions",
            json={"input": {}},
            headers={"Prefer": "wait"},
        )
    ).json
    assert body["status"] == "failed"
    assert "NaN" in body["error"]


def test_record_validation_rejects_a_bad_body(
    validate_record: Callable[[RequestRecord], None],
) -> None:
    """The teardown check in conftest is not a rubber stamp."""
    record = RequestRecord("GET", "/v1/predictions", "GET /v1/predictions", {}, 0.0)
    record.status, record.content_type = 200, "application/json"
    record.body = json.dumps({"next": None, "previous": None, "results": []}).encode()
    validate_record(record)
    record.body = json.dumps({"next": None, "results": [{"id": "x", "status": "bogus"}]}).encode()
    with pytest.raises(jsonschema.ValidationError):
        validate_record(record)
    record.route, record.body = "GET /v1/predictions/{id}", b'{"id": "x"}'
    with pytest.raises(jsonschema.ValidationError, match="required"):
        validate_record(record)
    record.content_type, record.status = "application/problem+json", 404
    record.body = b'{"detail": "nope", "status": 400}'
    with pytest.raises(AssertionError):
        validate_record(record)


async def test_the_extra_routes_are_served_and_conform(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    """Search, collections, deployments and trainings are part of the app."""

    model = fake.add_model("acme/paint", lambda prompt="": prompt, description="Paints")
    fake.add_model("fake-user/mine", lambda prompt="": prompt)
    fake.add_collection("art", models=["acme/paint"])
    assert (await http.get(f"{base_url}/collections")).status == 200
    assert (await http.get(f"{base_url}/collections/art")).json["models"][0]["name"] == "paint"
    assert (await http.get(f"{base_url}/search", params={"query": "paint"})).status == 200
    assert (await http.request("QUERY", f"{base_url}/models", data=b"paint")).status == 200
    assert (await http.get(f"{base_url}/deployments")).status == 200
    training = await http.post(
        f"{base_url}/models/acme/paint/versions/{model.version_id}/trainings",
        json={"destination": "fake-user/mine", "input": {}},
    )
    assert training.status == 201
    assert (await http.get(f"{base_url}/trainings")).status == 200
    assert fake.counts["QUERY /v1/models"] == 1
