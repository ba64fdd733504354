"""``import areplicate`` loads only what every use needs: jsonschema (input validation), rich and
the CLI, redis (a shared budget), opentelemetry (tracing, looked up at the first request) and the
testing fake wait until they are used; so do cattrs (the first response structured), stamina (the
first retry), html's entity tables (an HTML error page), the fan-out, the resource services, the
webhook receiver and the batch summary."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = [
    "jsonschema",
    "referencing",
    "rich",
    "redis",
    "opentelemetry",
    "areplicate._cli",
    "areplicate.testing",
    "cattrs",
    "stamina",
    "tenacity",
    "areplicate._convert",
    "areplicate._fanout",
    "areplicate._services",
    "areplicate._webhooks",
    "areplicate._summary",
    "areplicate._core.schema",
    "areplicate.resources",
    "areplicate.web",
    "areplicate.webhooks",
    "html",
]


def _loaded_after(code: str) -> dict[str, bool]:
    probe = (
        f"import json, sys\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {LAZY!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded: dict[str, bool] = json.loads(out)
    return loaded


def test_import_areplicate_leaves_the_optional_parts_alone() -> None:
    assert _loaded_after("import areplicate") == dict.fromkeys(LAZY, False)


def test_validation_still_loads_jsonschema_when_used() -> None:
    code = (
        "import areplicate\n"
        "from areplicate._core.schema import InputSchema\n"
        "schema = {'components': {'schemas': {'Input': {'type': 'object', 'properties': "
        "{'n': {'type': 'integer'}}, 'required': ['n']}}}}\n"
        "check = InputSchema(schema).check({'n': 'x'})\n"
        "assert check.errors, check"
    )
    loaded = _loaded_after(code)
    assert loaded["jsonschema"]
    assert not loaded["rich"]


def test_without_opentelemetry_tracing_is_simply_off() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "from areplicate import _otel\n"
        "assert _otel.tracer() is None"
    )
    loaded = _loaded_after(code)
    assert not loaded["jsonschema"]


def test_requests_leave_opentelemetry_unimported_until_the_application_imports_it() -> None:
    # Installed (the dev extra has it) but unused: importing it would only make every garbage
    # collection walk its modules. An application that sets a provider has imported it first.
    code = (
        "import asyncio, importlib.util\n"
        "assert importlib.util.find_spec('opentelemetry') is not None\n"
        "import areplicate\n"
        "from areplicate.testing import FakeReplicate\n"
        "async def main():\n"
        "    fake = FakeReplicate()\n"
        "    fake.add_model('o/m', lambda: 'ok')\n"
        "    async with fake.serve() as url, areplicate.Client(\n"
        "        'r8_x', base_url=url, rate_limits=None\n"
        "    ) as client:\n"
        "        assert await client.run('o/m', {}) == 'ok'\n"
        "asyncio.run(main())"
    )
    assert not _loaded_after(code)["opentelemetry"]


def test_the_lazy_names_load_at_first_use_as_the_same_objects() -> None:
    code = (
        "import areplicate\n"
        "from areplicate import gather_predictions, web\n"
        "import areplicate._fanout as f, areplicate.web as w\n"
        "assert gather_predictions is f.gather_predictions and web is w\n"
        "assert areplicate.Completed is f.Completed\n"
        "assert gather_predictions.__module__ == areplicate.Completed.__module__ == 'areplicate'\n"
        "assert {'gather_predictions', 'webhooks', 'Summary'} <= set(dir(areplicate))\n"
        "from areplicate import *\n"
        "assert callable(as_completed) and Tally.__module__ == 'areplicate'"
    )
    loaded = _loaded_after(code)
    assert loaded["areplicate._fanout"]
    assert loaded["areplicate.web"]
    assert not loaded["stamina"]  # a star import is not a retry


def test_a_response_loads_cattrs_and_only_a_retry_loads_stamina() -> None:
    code = (
        "import asyncio, sys, areplicate\n"
        "from areplicate.testing import FakeReplicate\n"
        "async def main():\n"
        "    fake = FakeReplicate()\n"
        "    fake.add_model('o/m', lambda: 'ok')\n"
        "    async with fake.serve() as url, areplicate.Client('r8_x', base_url=url,\n"
        "            rate_limits=None) as client:\n"
        "        assert (await client.models.get('o/m')).name == 'm'\n"
        "asyncio.run(main())"
    )
    loaded = _loaded_after(code)
    assert loaded["cattrs"]
    assert not loaded["stamina"]  # the retries' own tests show a retry still works
