"""Showing a prediction's output in a terminal, and saving its files.

File outputs are URL strings (``https:`` on replicate.delivery, or ``data:`` URIs) anywhere in the
output; ``areplicate._outputs`` finds and downloads them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from areplicate._client import Client
from areplicate._outputs import is_output_url, output_files, safe_filename

__all__ = ["render_output", "save_files"]


def render_output(output: Any) -> str:
    """The output as a person reads it: text as is, a list of tokens joined, URLs one per line,
    anything else as indented JSON. Empty for no output.

    The list rule is the one that surprises: a list of strings is joined with nothing between
    them (a language model streams its answer as such a list of tokens), unless every item is a
    file URL, when each goes on its own line so the output can be piped to a downloader.
    """
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(item, str) for item in output):
        if output and all(is_output_url(item) for item in output):
            return "\n".join(output)
        return "".join(output)  # an iterator model's tokens
    return json.dumps(output, indent=2, ensure_ascii=False)


def _unique(directory: Path, name: str, taken: set[Path], *, overwrite: bool) -> Path:
    """A path in ``directory`` for ``name`` that no earlier file of this save has taken.

    ``taken`` spans one call, so two outputs both named ``out.png`` become ``out.png`` and
    ``out-1.png``. Without ``overwrite`` an existing file is also skipped over, so a second run into
    the same folder adds files instead of replacing the first run's.
    """
    path = directory / name
    stem, suffix = path.stem, path.suffix
    n = 1
    while path in taken or (not overwrite and path.exists()):
        path = directory / f"{stem}-{n}{suffix}"
        n += 1
    taken.add(path)
    return path


async def save_files(
    client: Client, output: Any, directory: Path, *, prefix: str = "", overwrite: bool = False
) -> list[Path]:
    """Download every file in ``output`` into ``directory``; returns the paths written.

    Names come from the URL (``out-0.png``), made safe and short as the library's own downloads
    are, with ``prefix`` in front; ``-1``, ``-2`` … tell apart files of one output of the same
    name, and are added rather than overwriting an existing file unless ``overwrite`` (a retry
    of the same downloads). Downloads go through :class:`areplicate._outputs.FileOutput` (the
    token stays on the API's origin; a failed download leaves no partial file).
    """
    files = output_files(output, client)
    if not files:
        return []
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    taken: set[Path] = set()
    written: list[Path] = []
    for file in files:
        path = _unique(directory, prefix + safe_filename(file.name), taken, overwrite=overwrite)
        written.append(await file.save(path))
    return written
