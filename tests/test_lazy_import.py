"""``import areplicate`` loads only what every use needs: jsonschema (input validation), rich and
the CLI, redis (a shared budget), opentelemetry (tracing, looked up at the first request) and the
testing fake wait until they are used."""

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
