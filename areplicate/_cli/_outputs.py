"""Showing a prediction's output in a terminal, and saving its files.

File outputs are URL strings (``https:`` on replicate.delivery, or ``data:`` URIs) anywhere in the
output; ``areplicate._files`` finds and downloads them.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from areplicate._client import Client
from areplicate._files import output_files

__all__ = ["render_output", "save_files"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _is_file_url(value: str) -> bool:
    return value.startswith(("https://", "http://", "data:")) and not any(
        c.isspace() for c in value
    )


def render_output(output: Any) -> str:
    """The output as a person reads it: text as is, a list of tokens joined, URLs one per line,
    anything else as indented JSON. Empty for no output."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(item, str) for item in output):
        if output and all(_is_file_url(item) for item in output):
            return "\n".join(output)
        return "".join(output)  # an iterator model's tokens
    return json.dumps(output, indent=2, ensure_ascii=False)


def _unique(directory: Path, name: str, taken: set[Path]) -> Path:
    path = directory / name
    stem, suffix = path.stem, path.suffix
    n = 1
    while path in taken or path.exists():
        path = directory / f"{stem}-{n}{suffix}"
        n += 1
    taken.add(path)
    return path


async def save_files(
    client: Client, output: Any, directory: Path, *, prefix: str = ""
) -> list[Path]:
    """Download every file in ``output`` into ``directory``; returns the paths written.

    Names come from the URL (``out-0.png``) with ``prefix`` in front, and ``-1``, ``-2`` … added
    rather than overwriting an existing file. Downloads go through
    :class:`areplicate._files.FileOutput` (the token stays on the API's origin; a failed download
    leaves no partial file).
    """
    files = output_files(output, client)
    if not files:
        return []
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    taken: set[Path] = set()
    written: list[Path] = []
    for index, file in enumerate(files):
        name = _SAFE_NAME.sub("_", file.name).strip("._") or f"output-{index}"
        written.append(await file.save(_unique(directory, prefix + name, taken)))
    return written
