"""The CLI tells file URLs from text with the library's one test (``output_files`` agrees)."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

import areplicate
from areplicate._cli._outputs import render_output
from areplicate._cli.run import _print_events


def stub_client(*data: str) -> Any:
    async def stream(prediction: Any) -> AsyncIterator[areplicate.StreamEvent]:
        for item in data:
            yield areplicate.StreamEvent("output", item)

    return types.SimpleNamespace(predictions=types.SimpleNamespace(stream=stream))


TEXT_LIKE_URLS = ["https://example.com is where", "data:none", "http://a\tb"]
FILE_URLS = ["https://replicate.delivery/x/out-0.png", "data:,hi"]


@pytest.mark.parametrize("token", TEXT_LIKE_URLS)
async def test_a_streamed_token_that_only_starts_like_a_url_is_text(
    token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _print_events(stub_client(token, "!"), areplicate.Prediction(id="p"), echo=True)
    assert capsys.readouterr().out == token + "!\n"
    assert areplicate.output_files(token) == []
    assert render_output([token, "!"]) == token + "!"


async def test_streamed_file_urls_are_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    await _print_events(stub_client(*FILE_URLS), areplicate.Prediction(id="p"), echo=True)
    assert capsys.readouterr().out == "".join(url + "\n" for url in FILE_URLS)
    assert [f.url for f in areplicate.output_files(FILE_URLS)] == FILE_URLS
    assert render_output(FILE_URLS) == "\n".join(FILE_URLS)
