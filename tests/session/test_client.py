"""Client configuration and lifecycle: token and base URL from argument or environment, use after
close, ResourceWarning for a client left open, no token in any repr."""

from __future__ import annotations

import gc
import warnings

import attrs
import pytest

import areplicate
from areplicate import Client, RateLimits
from areplicate._config import Config

TOKEN = "r8_ClientT0kenClientT0kenClientT0ken0001"


class TestToken:
    def test_missing_token_names_both_ways_to_give_one(self) -> None:
        with pytest.raises(ValueError, match="no Replicate API token") as info:
            Client(environ={})
        message = str(info.value)
        assert "api_token" in message
        assert "REPLICATE_API_TOKEN" in message

    @pytest.mark.parametrize("token", ["", "   "])
    def test_blank_token_is_missing(self, token: str) -> None:
        with pytest.raises(ValueError, match="REPLICATE_API_TOKEN"):
            Client(environ={"REPLICATE_API_TOKEN": token})
        with pytest.raises(ValueError, match="REPLICATE_API_TOKEN"):
            Client(token, environ={})

    def test_from_the_environment(self) -> None:
        client = Client(environ={"REPLICATE_API_TOKEN": f" {TOKEN}\n"})
        assert client.config.api_token == TOKEN

    def test_argument_beats_environment(self) -> None:
        client = Client(TOKEN, environ={"REPLICATE_API_TOKEN": "r8_other"})
        assert client.config.api_token == TOKEN

    def test_whitespace_inside_is_refused_without_echoing_the_token(self) -> None:
        with pytest.raises(ValueError, match="contains whitespace") as info:
            Client("r8_abc def", environ={})
        assert "abc" not in str(info.value)

    @pytest.mark.parametrize("token", [b"r8_bytes", 42])
    def test_not_a_string(self, token: object) -> None:
        with pytest.raises(TypeError, match="must be a str"):
            Client(token, environ={})  # type: ignore[arg-type]

    def test_reads_the_real_environment_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
        client = Client()
        assert client.config.api_token == TOKEN
        assert client.base_url == "https://api.replicate.com/v1"


class TestBaseUrl:
    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({}, "https://api.replicate.com/v1"),
            ({"REPLICATE_BASE_URL": ""}, "https://api.replicate.com/v1"),
            ({"REPLICATE_BASE_URL": "https://api.replicate.com"}, "https://api.replicate.com/v1"),
            (
                {"REPLICATE_BASE_URL": "https://api.cometapi.com/replicate"},
                "https://api.cometapi.com/replicate/v1",
            ),
            ({"REPLICATE_BASE_URL": "http://127.0.0.1:8000/v1/"}, "http://127.0.0.1:8000/v1"),
        ],
    )
    def test_from_the_environment(self, env: dict[str, str], expected: str) -> None:
        client = Client(TOKEN, environ=env)
        assert client.base_url == expected
        assert client.config.base_url == expected

    def test_argument_beats_environment(self) -> None:
        client = Client(
            TOKEN, base_url="http://127.0.0.1:9", environ={"REPLICATE_BASE_URL": "https://x"}
        )
        assert client.base_url == "http://127.0.0.1:9/v1"

    def test_nonsense_is_refused(self) -> None:
        with pytest.raises(ValueError, match="absolute http"):
            Client(TOKEN, base_url="api.replicate.com", environ={})


class TestOptions:
    def test_defaults(self) -> None:
        config = Client(TOKEN, environ={}).config
        assert config.rate_limits == RateLimits()
        assert config.user_agent == f"areplicate/{areplicate.__version__}"

    @pytest.mark.parametrize(
        "options",
        [
            {"request_timeout": 0},
            {"request_timeout": float("nan")},
            {"connect_timeout": -1},
            {"max_retries": -1},
            {"max_retries": 1.5},
            {"max_retries": True},
            {"max_connections": 0},
        ],
    )
    def test_nonsense_is_refused(self, options: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="must be"):
            Client(TOKEN, environ={}, **options)  # type: ignore[arg-type]

    def test_rate_limits_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="rate_limits=None"):
            RateLimits(creates_per_minute=0)


class TestLifecycle:
    async def test_async_with_opens_and_closes(self) -> None:
        client = Client(TOKEN, environ={}, rate_limits=None)
        assert "open" in repr(client)
        async with client as entered:
            assert entered is client
            assert client._session.opened
        assert "closed" in repr(client)
        assert not client._session.opened
        await client.aclose()  # idempotent

    async def test_use_after_close_raises(self) -> None:
        async with Client(TOKEN, environ={}, rate_limits=None) as client:
            pass
        with pytest.raises(RuntimeError, match="closed"):
            await client._session.request("GET", "predictions/p1")
        with pytest.raises(RuntimeError, match="closed"):
            await client.__aenter__()

    async def test_an_unclosed_client_warns_when_collected(self) -> None:
        client = Client(TOKEN, environ={}, rate_limits=None)
        await client.__aenter__()
        http = client._session._http
        assert http is not None
        try:
            # nothing else refers to the client, so dropping it collects it right away
            with pytest.warns(ResourceWarning, match="was never closed"):
                del client
        finally:
            await http.close()  # the pool it left behind

    async def test_closed_or_never_opened_clients_do_not_warn(self) -> None:
        async with Client(TOKEN, environ={}, rate_limits=None) as opened:
            pass
        never = Client(TOKEN, environ={})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del opened, never
            gc.collect()
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_no_token_in_any_repr() -> None:
    client = Client(TOKEN, environ={})
    config = client.config
    texts = [repr(client), str(client), repr(config), str(config), repr(client._session)]
    texts.append(repr(attrs.evolve(config, request_timeout=5.0)))
    assert not [t for t in texts if TOKEN in t]
    assert "api_token" not in repr(config)
    assert isinstance(config, Config)
