"""Client configuration as a user writes it: bad base URLs are refused before any request."""

from __future__ import annotations

import pytest

import areplicate
from areplicate._config import BASE_URL_ENV, Config


def test_a_base_url_with_credentials_is_refused_when_the_client_is_made() -> None:
    # aiohttp used to reject it on the first request with "Cannot combine AUTHORIZATION header
    # with AUTH argument or credentials encoded in URL", naming nothing the user wrote.
    with pytest.raises(ValueError, match="must not carry a user name or password") as info:
        areplicate.Client(api_token="r8_x", base_url="https://user:pass@api.replicate.com")
    assert "user:pass@" not in str(info.value)


def test_the_same_from_the_environment() -> None:
    environ = {"REPLICATE_API_TOKEN": "r8_x", BASE_URL_ENV: "https://me:s3cret@api.replicate.com"}
    with pytest.raises(ValueError, match="user name or password") as info:
        Config.resolve(environ)
    assert "s3cret" not in str(info.value)
