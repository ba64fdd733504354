"""Demo models for ``python -m areplicate.testing`` and ``areplicate demo``: quick and deterministic."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from areplicate.testing._model import FileOut, log

if TYPE_CHECKING:
    from areplicate.testing._fake import FakeReplicate

__all__ = ["DEMO_MODELS", "add_demo_models", "png"]

#: The models add_demo_models registers.
DEMO_MODELS = ("demo/chat", "demo/echo", "demo/flaky", "demo/pixel", "demo/sleep")

_ANSWER = (
    "Llamas are gentle, curious animals from the Andes. They hum to each other, carry loads "
    "over mountain passes, and make excellent companions for alpacas and people alike."
)
_WORDS = _ANSWER.split(" ")


def png(width: int, height: int, seed: bytes) -> bytes:
    """A small valid PNG: a diagonal gradient whose colours come from ``seed``."""
    digest = hashlib.sha256(seed).digest()
    r0, g0, b0, r1, g1, b1 = digest[:6]
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            t = (x + y) / max(1, width + height - 2)
            row += bytes(int(a + (b - a) * t) for a, b in ((r0, r1), (g0, g1), (b0, b1)))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


async def chat(prompt: str = "Tell me about llamas", max_words: int = 24) -> AsyncIterator[str]:
    """Streams a canned answer word by word (a few ms apart)."""
    log(f"prompt: {prompt}")
    for i, word in enumerate(_WORDS[:max_words]):
        await asyncio.sleep(0.002)
        yield word if i == 0 else " " + word


async def echo(**inputs: Any) -> dict[str, Any]:
    """Returns its input unchanged."""
    return inputs


async def pixel(prompt: str = "a llama", size: int = 8) -> list[FileOut]:
    """Returns one PNG (``size`` x ``size``) whose colours depend on the prompt."""
    await asyncio.sleep(0.01)
    log(f"rendering {size}x{size} for {prompt!r}")
    return [FileOut(png(size, size, prompt.encode()), "out-0.png", "image/png")]


async def flaky(seed: int = 0) -> str:
    """Fails for every seed divisible by 5, succeeds otherwise: deterministic failures."""
    await asyncio.sleep(0.005)
    if seed % 5 == 0:
        raise RuntimeError(f"demo/flaky fails for seeds divisible by 5 (got {seed})")
    return f"ok {seed}"


async def sleep(seconds: float = 1.0) -> float:
    """Sleeps ``seconds`` (0 to 600), then returns it: a model of known duration."""
    await asyncio.sleep(seconds)
    return seconds


def _int(title: str, order: int, default: int, low: int, high: int) -> dict[str, Any]:
    return {
        "type": "integer",
        "title": title,
        "x-order": order,
        "default": default,
        "minimum": low,
        "maximum": high,
    }


def _text(title: str, order: int, default: str) -> dict[str, Any]:
    return {"type": "string", "title": title, "x-order": order, "default": default}


def add_demo_models(fake: FakeReplicate) -> None:
    """Register the demo models (all official, all quick) on ``fake``.

    ``demo/chat`` streams words, ``demo/echo`` returns its input, ``demo/pixel`` returns a PNG
    file URL, ``demo/flaky`` fails when ``seed`` is divisible by 5, ``demo/sleep`` takes
    ``seconds``. Gotcha: they are official models, so ``owner/name`` runs them without a version.
    """
    fake.add_model(
        "demo/chat",
        chat,
        {
            "type": "object",
            "title": "Input",
            "properties": {
                "prompt": _text("Prompt", 0, "Tell me about llamas"),
                "max_words": _int("Max Words", 1, 24, 1, len(_WORDS)),
            },
        },
        description="Streams a short canned answer, word by word.",
    )
    fake.add_model("demo/echo", echo, description="Returns its input.")
    fake.add_model(
        "demo/pixel",
        pixel,
        {
            "type": "object",
            "title": "Input",
            "properties": {
                "prompt": _text("Prompt", 0, "a llama"),
                "size": _int("Size", 1, 8, 1, 64),
            },
        },
        output_schema={
            "type": "array",
            "title": "Output",
            "items": {"type": "string", "format": "uri"},
        },
        description="Returns a tiny PNG whose colours depend on the prompt.",
    )
    fake.add_model(
        "demo/flaky",
        flaky,
        {
            "type": "object",
            "title": "Input",
            "properties": {"seed": _int("Seed", 0, 0, 0, 2**31 - 1)},
        },
        description="Fails for seeds divisible by 5.",
    )
    fake.add_model(
        "demo/sleep",
        sleep,
        {
            "type": "object",
            "title": "Input",
            "properties": {
                "seconds": {
                    "type": "number",
                    "title": "Seconds",
                    "x-order": 0,
                    "default": 1.0,
                    "minimum": 0,
                    "maximum": 600,
                }
            },
        },
        description="Sleeps for the given seconds.",
    )
