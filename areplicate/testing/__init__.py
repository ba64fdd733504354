"""areplicate.testing: a fake Replicate API server for tests, demos and benchmarks.

It behaves like the real API (docs/api-notes.md): the three create routes, get, list with
cursor pages, cancel, ``Prefer: wait``, ``Cancel-After`` deadlines, SSE streams, signed webhooks,
files, models and versions, 422 input validation, 401 without a token, problem+json errors, and
optionally real rate limits and injected faults. Models are plain Python callables::

    from areplicate.testing import FakeReplicate, log

    fake = FakeReplicate()

    async def upper(text: str) -> str:
        log("shouting")
        return text.upper()

    fake.add_model("acme/upper", upper)
    async with fake.serve() as base_url:          # http://127.0.0.1:<port>/v1
        async with areplicate.Client("r8_test", base_url=base_url) as client:
            assert await client.run("acme/upper", {"text": "hi"}) == "HI"
    assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 1

It imports only ``areplicate._core`` from the client, so a serialization bug in the client cannot
hide behind the same bug here. Run it standalone with ``python -m areplicate.testing --port 8000``.
The pytest plugin provides the ``fake_replicate`` and ``fake_replicate_url`` fixtures (the latter
works for sync tests too: it serves from a thread there). A model reads an uploaded file input with
:func:`read_input`; ``FakeReplicate(clock=InstantClock())`` makes the fake's timers instant.
"""

from contextlib import suppress as _suppress

from areplicate.testing._clock import Clock, InstantClock, SystemClock
from areplicate.testing._demo import add_demo_models
from areplicate.testing._fake import FakeDeployment, FakeReplicate
from areplicate.testing._limits import FakeRateLimits, Fault, Faults, TokenBucket
from areplicate.testing._model import FakeModel, FileOut, InvalidField, log, read_input
from areplicate.testing._records import RequestRecord, WebhookDelivery

__all__ = [
    "Clock",
    "FakeDeployment",
    "FakeModel",
    "FakeRateLimits",
    "FakeReplicate",
    "Fault",
    "Faults",
    "FileOut",
    "InstantClock",
    "InvalidField",
    "RequestRecord",
    "SystemClock",
    "TokenBucket",
    "WebhookDelivery",
    "add_demo_models",
    "log",
    "read_input",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("areplicate.testing._"):
        with _suppress(AttributeError, TypeError):
            _obj.__module__ = "areplicate.testing"
del _name, _obj, _suppress
