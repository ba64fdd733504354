"""No exception areplicate raises holds the API token anywhere an exception handler can reach it:
its attributes, arguments, ``__cause__`` and ``__context__``, recursively (aiohttp's errors keep the
request they failed on, headers included)."""

from __future__ import annotations

import json
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import pytest

import areplicate
from tests.hostile.server import (
    TOKEN,
    Handler,
    Hostile,
    created,
    deep_json,
    drop,
    garbage,
    json_response,
    prediction_body,
    problem,
    raw,
    stalled_stream,
    trickle,
    truncated,
)

ONE = "/v1/predictions/p1"
CREATE = "/v1/models/acme/m/predictions"
BODY = json.dumps(prediction_body("p1")).encode()
_OPAQUE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, types.MethodType)
_SKIP = ("__traceback__",)  # frames' locals are out of scope: a handler sees the objects above


def where_is(needle: str, root: object) -> list[str]:
    """Every path from ``root`` to a string holding ``needle`` (empty when it is nowhere)."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, str]] = [(root, "error")]
    while stack:
        obj, path = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes, bytearray)):
            text = obj if isinstance(obj, str) else bytes(obj).decode("latin-1")
            if needle in text:
                found.append(path)
            continue
        if isinstance(obj, (int, float, bool)):
            continue
        if isinstance(obj, BaseException):
            stack += [
                (obj.__cause__, f"{path}.__cause__"),
                (obj.__context__, f"{path}.__context__"),
            ]
            stack += [(arg, f"{path}.args[{i}]") for i, arg in enumerate(obj.args)]
        if isinstance(obj, Mapping):
            for key, value in list(obj.items()):
                stack += [(key, f"{path}[key]"), (value, f"{path}[{key!r}]")]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += [(item, f"{path}[{i}]") for i, item in enumerate(obj)]
        names = set(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            names.update([slots] if isinstance(slots, str) else slots)
        for name in names - set(_SKIP):
            try:
                value = getattr(obj, name)
            except Exception:
                continue
            stack.append((value, f"{path}.{name}"))
        if not names and not isinstance(obj, (Mapping, list, tuple, set, frozenset)):
            stack.append((repr(obj), f"repr({path})"))  # C objects (URLs, multidicts' items)
    return found


def test_the_walker_finds_a_token_hidden_deep() -> None:
    class Holder:
        def __init__(self) -> None:
            self.headers = {"Authorization": f"Bearer {TOKEN}"}

    inner = ValueError(Holder())
    outer = areplicate.APIConnectionError("broke", sent=True)
    outer.__context__ = inner
    assert where_is(TOKEN, outer) == ["error.__context__.args[0].headers['Authorization']"]
    assert where_is(TOKEN, areplicate.APIConnectionError("broke", sent=True)) == []


async def _get(client: areplicate.Client) -> object:
    return await client.predictions.get("p1")


async def _create(client: areplicate.Client) -> object:
    return await client.predictions.create("acme/m", input={"prompt": "hi"})


async def _stream(client: areplicate.Client) -> object:
    async with client._session.stream(f"{client.config.base_url}/stream") as resp:
        async for _line in resp.content:
            pass
    return None


Call = Callable[[areplicate.Client], Awaitable[object]]
SCENARIOS: dict[str, tuple[str, str, Handler, Call]] = {
    "malformed answer": ("GET", ONE, garbage(), _get),
    "malformed create answer": ("POST", CREATE, garbage(), _create),
    "truncated body": ("GET", ONE, truncated(BODY, keep=10), _get),
    "truncated create": ("POST", CREATE, truncated(BODY, keep=10, status=201), _create),
    "dropped": ("GET", ONE, drop(), _get),
    "dropped create": ("POST", CREATE, drop(), _create),
    "500": ("GET", ONE, problem(500, "Boom"), _get),
    "401": ("GET", ONE, problem(401, "Unauthenticated"), _get),
    "trickle timeout": ("GET", ONE, trickle(BODY, every=1.0), _get),
    "deep json": ("GET", ONE, raw(deep_json(100_000)), _get),
    "deep json create": ("POST", CREATE, created(deep_json(100_000)), _create),
    "redirect": ("GET", ONE, raw(b"", status=302, headers={"Location": "http://x.example/"}), _get),
    "html 201": ("POST", CREATE, created(b"<html>made it</html>"), _create),
    "no id 201": ("POST", CREATE, created({"status": "starting"}), _create),
    "stream 404": ("GET", "/v1/stream", problem(404, "Not found"), _stream),
    "malformed stream": ("GET", "/v1/stream", garbage(), _stream),
    "stalled stream": ("GET", "/v1/stream", stalled_stream(b"data: 1\n\n"), _stream),
    "ok": ("GET", ONE, json_response(prediction_body("p1")), _get),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=str)
async def test_no_error_holds_the_token(hostile: Hostile, scenario: str) -> None:
    method, path, handler, call = SCENARIOS[scenario]
    hostile.on(method, path, handler)
    async with areplicate.Client(
        api_token=TOKEN, base_url=hostile.url, rate_limits=None, request_timeout=1, max_retries=1
    ) as client:
        with anyio.fail_after(30):
            try:
                await call(client)
            except areplicate.ReplicateError as exc:
                error: Any = exc
            else:
                error = None
    if scenario == "ok":
        assert error is None
        return
    assert error is not None, "every other scenario is an error"
    assert where_is(TOKEN, error) == []
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    # the token did go to the API (so the test would see it, were it kept)
    assert any(seen.headers.get("Authorization") == f"Bearer {TOKEN}" for seen in hostile.requests)
