"""The fake as a product: every operation of the API served, consistent state, settable faults,
the user's own models from the command line, readable file inputs, properties for state, and the
pytest fixture working for synchronous tests."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from areplicate._core.files_sign import sign_download
from areplicate.testing import FakeReplicate, Faults, read_input
from areplicate.testing._app import Api

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
METHODS = ("get", "post", "put", "patch", "delete", "query")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_openapi_operation_is_served() -> None:
    document = json.loads((FIXTURES / "openapi" / "replicate-openapi.json").read_text())
    operations = {
        (method.upper(), _shape(path))
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert len(operations) == 37
    served = {(method, _shape(path)) for method, path, _, _ in Api(FakeReplicate(), "").table()}
    assert sorted(operations - served) == []


async def _upload(http: Any, base_url: str, data: bytes) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("content", data, filename="data.bin", content_type="application/octet-stream")
    reply = await http.post(f"{base_url}/files", data=form)
    assert reply.status == 201
    return reply.json  # type: ignore[no-any-return]


class TestModels:
    async def test_create_update_readme_delete(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        body = {"owner": "fake-user", "name": "hotdog", "visibility": "private", "hardware": "cpu"}
        created = await http.post(f"{base_url}/models", json=body)
        assert created.status == 201
        assert created.json["latest_version"] is None
        assert created.json["visibility"] == "private"
        again = await http.post(f"{base_url}/models", json=body)
        assert again.status == 409
        bad = await http.post(f"{base_url}/models", json={"owner": "fake-user", "name": "x"})
        assert bad.status == 422
        assert {f["description"] for f in bad.json["invalid_fields"]} == {
            "visibility is required",
            "hardware is required",
        }
        url = f"{base_url}/models/fake-user/hotdog"
        assert (await http.get(f"{url}/readme")).status == 404
        patch = {"description": "Hot dogs", "readme": "# Hot dog\n", "weights_url": "https://w"}
        updated = await http.request("PATCH", url, json=patch)
        assert updated.status == 200
        assert updated.json["description"] == "Hot dogs"
        assert (await http.get(url)).json["description"] == "Hot dogs"
        readme = await http.get(f"{url}/readme")
        assert (readme.status, readme.content_type, readme.body) == (
            200,
            "text/plain",
            b"# Hot dog\n",
        )
        deleted = await http.delete(url)
        assert deleted.status == 204
        assert (await http.get(url)).status == 404

    async def test_delete_refuses_public_models_and_models_with_versions(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        fake.add_model("acme/one", lambda: 1)
        reply = await http.delete(f"{base_url}/models/acme/one")
        assert reply.status == 403
        assert (await http.get(f"{base_url}/models/acme/one")).status == 200

    async def test_versions_delete(self, fake: FakeReplicate, base_url: str, http: Any) -> None:
        first = fake.add_model("acme/one", lambda: 1)
        second = fake.add_model("acme/one", lambda: 2)
        fake.add_deployment("acme/pinned", first)
        url = f"{base_url}/models/acme/one/versions"
        assert (await http.delete(f"{url}/{first.version_id}")).status == 409
        reply = await http.delete(f"{url}/{second.version_id}")
        assert reply.status == 202
        assert (await http.get(f"{url}/{second.version_id}")).status == 404
        assert [v["id"] for v in (await http.get(url)).json["results"]] == [first.version_id]
        assert (await http.delete(f"{url}/{second.version_id}")).status == 404

    async def test_examples(self, fake: FakeReplicate, base_url: str, http: Any) -> None:
        fake.add_model("acme/one", lambda: 1)
        url = f"{base_url}/models/acme/one/examples"
        assert (await http.get(url)).json["results"] == []
        created = await http.post(
            f"{base_url}/models/acme/one/predictions",
            json={"input": {}},
            headers={"Prefer": "wait"},
        )
        fake.add_example("acme/one", created.json["id"])
        [example] = (await http.get(url)).json["results"]
        assert example == created.json


class TestFileDownload:
    async def test_a_signed_url_downloads(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        file = await _upload(http, base_url, b"zip bytes")
        reply = await http.get(fake.file_download_url(file["id"]))
        assert (reply.status, reply.body) == (200, b"zip bytes")

    async def test_owner_expiry_and_signature_are_checked(
        self, fake: FakeReplicate, base_url: str, http: Any
    ) -> None:
        file = await _upload(http, base_url, b"secret")
        url = f"{base_url}/files/{file['id']}/download"
        now = int(fake.clock.time())

        def signed(owner: str, expiry: int, secret: str | None = None) -> str:
            key = secret if secret is not None else fake.files_signing_secret
            signature = sign_download(key, owner, file["id"], expiry)
            return url + "?" + urlencode({"owner": owner, "expiry": expiry, "signature": signature})

        assert (await http.get(url)).status == 400
        assert (await http.get(signed("fake-user", now + 60, "wrong"))).status == 403
        assert (await http.get(signed("fake-user", now - 1))).status == 403
        assert (await http.get(signed("someone-else", now + 60))).status == 404
        tampered = signed("fake-user", now + 60).replace(f"expiry={now + 60}", f"expiry={now + 99}")
        assert (await http.get(tampered)).status == 403
        assert (await http.get(signed("fake-user", now + 60))).body == b"secret"

    def test_the_signature_is_the_documented_hmac(self) -> None:
        # base64(HMAC-SHA256(secret, "{owner} {id} {expiry}")), as the API document says
        import hashlib
        import hmac

        expected = base64.b64encode(
            hmac.new(b"k", b"mattt cneqzikepnug6xezperrr4z55o 1708515345", hashlib.sha256).digest()
        ).decode()
        assert sign_download("k", "mattt", "cneqzikepnug6xezperrr4z55o", 1708515345) == expected
        with pytest.raises(TypeError, match="whole seconds"):
            sign_download("k", "mattt", "x", 1.5)  # type: ignore[arg-type]


async def test_get_deployment_shows_the_release_a_patch_made(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    fake.add_model("acme/one", lambda: 1)
    fake.add_deployment("acme/prod", "acme/one")
    url = f"{base_url}/deployments/acme/prod"
    patched = await http.request("PATCH", url, json={"hardware": "gpu-t4", "max_instances": 7})
    release = patched.json["current_release"]
    assert (release["number"], release["configuration"]["hardware"]) == (2, "gpu-t4")
    assert (await http.get(url)).json == patched.json
    [listed] = (await http.get(f"{base_url}/deployments")).json["results"]
    assert listed == patched.json


async def test_faults_set_after_construction_take_effect(
    make_fake: Callable[..., FakeReplicate], http: Any
) -> None:
    fake = make_fake()
    async with fake.serve() as base_url:
        assert (await http.get(f"{base_url}/hardware")).status == 200
        fake.faults = Faults(error_5xx_rate=1.0, seed=1)
        assert (await http.get(f"{base_url}/hardware")).status >= 500
        assert fake.faults == Faults(error_5xx_rate=1.0, seed=1)
        fake.faults = None
        assert (await http.get(f"{base_url}/hardware")).status == 200
    with pytest.raises(TypeError, match="Faults or None"):
        fake.faults = 0.5  # type: ignore[assignment]


async def test_a_model_reads_its_uploaded_file_inputs(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    def size(archive: str, note: str) -> list[Any]:
        return [read_input(archive).decode(), read_input(note).decode()]

    fake.add_model("acme/size", size)
    file = await _upload(http, base_url, b"archive bytes")
    assert (await http.get(file["urls"]["get"], token=None)).status == 401  # no token in a model
    note = "data:text/plain;base64," + base64.b64encode(b"a note").decode()
    reply = await http.post(
        f"{base_url}/models/acme/size/predictions",
        json={"input": {"archive": file["urls"]["get"], "note": note}},
        headers={"Prefer": "wait"},
    )
    assert reply.json["output"] == ["archive bytes", "a note"]
    with pytest.raises(ValueError, match="inside a fake model call"):
        read_input(file["urls"]["get"])


async def test_a_foreign_url_is_a_clear_failure(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    fake.add_model("acme/read", lambda archive: len(read_input(archive)))
    reply = await http.post(
        f"{base_url}/models/acme/read/predictions",
        json={"input": {"archive": "https://example.com/x.zip"}},
        headers={"Prefer": "wait"},
    )
    assert reply.json["status"] == "failed"
    assert "is not a file of this fake" in reply.json["error"]


async def test_state_is_read_through_properties(
    fake: FakeReplicate, base_url: str, http: Any
) -> None:
    release = asyncio.Event()

    async def held() -> int:
        await release.wait()
        return 1

    fake.add_model("acme/held", held)
    await http.post(f"{base_url}/models/acme/held/predictions", json={"input": {}})
    assert fake.running == 1
    release.set()
    await fake.wait_idle()
    assert fake.running == 0
    assert len(fake.predictions) == 1


def test_the_url_fixture_serves_a_synchronous_test(
    fake_replicate: FakeReplicate, fake_replicate_url: str
) -> None:
    """A plain ``def`` test (a Starlette TestClient, say) gets a fake that answers."""
    fake_replicate.add_model("a/b", lambda: 1)
    request = urllib.request.Request(
        fake_replicate_url + "/models/a/b/predictions",
        data=b'{"input": {}}',
        headers={"Authorization": "Bearer r8_x", "Prefer": "wait"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["output"] == 1


SETUP_MODULE = """
def setup(fake):
    fake.add_model("team/shout", lambda text: text.upper())
"""


class TestCommandLineModels:
    def test_the_users_models_are_served(self, tmp_path: pathlib.Path) -> None:
        (tmp_path / "team_fakes.py").write_text(SETUP_MODULE)
        command = [sys.executable, "-m", "areplicate", "fake-server", "--port", "0"]
        with subprocess.Popen(
            [*command, "--no-demo", "--models", "team_fakes:setup"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            try:
                assert process.stdout is not None
                line = process.stdout.readline()
                assert line.startswith("Fake Replicate API at "), line
                base_url = line.split(" at ")[1].strip()
                assert process.stdout.readline().strip() == "models: team/shout"
                request = urllib.request.Request(
                    f"{base_url}/models/team/shout/predictions",
                    data=b'{"input": {"text": "hi"}}',
                    headers={"Authorization": "Bearer r8_x", "Prefer": "wait"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert json.load(response)["output"] == "HI"
            finally:
                process.terminate()
                process.wait(timeout=20)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("team_fakes", "PACKAGE.MODULE:FUNCTION"),
            ("no_such_module_here:setup", "cannot import"),
            ("team_fakes:nothing", "has no function 'nothing'"),
        ],
    )
    def test_bad_specs_say_what_is_wrong(
        self,
        tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        spec: str,
        message: str,
    ) -> None:
        from areplicate.testing.__main__ import main

        (tmp_path / "team_fakes.py").write_text(SETUP_MODULE)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        assert main(["--no-demo", "--models", spec]) == 2
        assert message in capsys.readouterr().err

    def test_help_names_the_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        from areplicate._cli.fake_server import main

        assert main(["--help"]) == 0
        assert "--models PACKAGE.MODULE:FUNCTION" in capsys.readouterr().out


def test_download_url_query_is_signed_for_the_account(fake: FakeReplicate) -> None:
    fake._new_file("a", "text/plain", b"x", {})
    [file_id] = fake._files
    query = parse_qs(urlsplit(fake.file_download_url(file_id)).query)
    assert query["owner"] == ["fake-user"]
    expiry = int(query["expiry"][0])
    assert query["signature"] == [
        sign_download(fake.files_signing_secret, "fake-user", file_id, expiry)
    ]


async def test_the_clients_download_works_against_the_fake(
    fake: FakeReplicate, base_url: str, tmp_path: pathlib.Path
) -> None:
    import areplicate

    async with areplicate.Client("r8_test", base_url=base_url) as client:
        file = await client.files.create(b"zip bytes", filename="data.zip")
        expiry = int(fake.clock.time()) + 60
        signature = client.files.sign(
            file, owner="fake-user", expiry=expiry, secret=fake.files_signing_secret
        )
        path = await client.files.download(
            file, tmp_path, owner="fake-user", expiry=expiry, signature=signature
        )
    assert path.read_bytes() == b"zip bytes"
