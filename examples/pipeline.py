"""An image -> caption pipeline: two models per prompt, each stage with its own concurrency.

Every prompt is drawn by an image model, then the image's URL goes straight to a captioning model
(the image is never downloaded). The two stages overlap: while early prompts are being captioned,
later ones are still being drawn, so the whole takes less than the stages one after the other. One
fan-out runs it all: one request budget, one progress line, and Ctrl-C cancels every prediction
still running.

    export REPLICATE_API_TOKEN=r8_...
    python examples/pipeline.py "a red fox" "a lighthouse at dusk" ...

Offline, against the fake server (``--fake`` serves two stand-in models in this process):

    python examples/pipeline.py --fake prompt-1 prompt-2 prompt-3

Environment: ``DRAW_MODEL`` and ``CAPTION_MODEL`` pick the models (defaults below);
``DRAW_LIMIT`` / ``CAPTION_LIMIT`` the stages' concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence

import areplicate
from areplicate.testing import FakeReplicate, FileOut

DRAW_MODEL = os.environ.get("DRAW_MODEL", "black-forest-labs/flux-schnell")
CAPTION_MODEL = os.environ.get("CAPTION_MODEL", "salesforce/blip")


async def caption_all(
    client: areplicate.Client,
    prompts: Sequence[str],
    *,
    draw_limit: int = 8,
    caption_limit: int = 32,
    draw_model: str = DRAW_MODEL,
    caption_model: str = CAPTION_MODEL,
    show: bool = True,
) -> list[str | BaseException]:
    """One caption per prompt, in prompt order (or the exception that prompt's chain ended with)."""
    draw = areplicate.Stage("draw", draw_limit)
    caption = areplicate.Stage("caption", caption_limit)

    async def pipeline(client: areplicate.Client, prompt: str) -> str:
        async with draw:
            images = await client.run(draw_model, {"prompt": prompt})
        # Some image models return one URL, some a list of them: caption the first.
        image = images[0] if isinstance(images, list) else images
        async with caption:
            text = await client.run(caption_model, {"image": image})
        return str(text)

    def progress(p: areplicate.Progress) -> None:
        if show:
            line = f"{p.done}/{p.total} done ({p.errors} errors) | {draw} | {caption}"
            sys.stderr.write(f"\r{line}" + ("\n" if p.done == p.total else ""))
            sys.stderr.flush()

    return await areplicate.gather_predictions(
        client,
        pipeline,
        prompts,
        concurrency=draw_limit + caption_limit,
        return_exceptions=True,
        on_progress=progress,
    )


@contextlib.asynccontextmanager
async def fake_replicate() -> AsyncIterator[str]:
    """A fake Replicate serving stand-ins for the two models; yields its base URL."""
    fake = FakeReplicate()

    def draw(prompt: str) -> FileOut:
        return FileOut(b"\x89PNG\r\n\x1a\n" + prompt.encode(), f"{prompt}.png")

    def caption(image: str) -> str:
        return f"a caption of {image.rsplit('/', 1)[-1]}"

    fake.add_model(DRAW_MODEL, draw)
    fake.add_model(CAPTION_MODEL, caption)
    async with fake.serve() as url:
        yield url


async def main(argv: Sequence[str]) -> int:
    args = list(argv)
    use_fake = "--fake" in args
    prompts = [a for a in args if a != "--fake"]
    if not prompts:
        sys.stderr.write(f"{__doc__}\n")
        return 2
    async with contextlib.AsyncExitStack() as stack:
        token = base_url = None
        if use_fake:
            token, base_url = "r8_fake", await stack.enter_async_context(fake_replicate())
        client = await stack.enter_async_context(
            areplicate.Client(api_token=token, base_url=base_url)
        )
        results = await caption_all(
            client,
            prompts,
            draw_limit=int(os.environ.get("DRAW_LIMIT", "8")),
            caption_limit=int(os.environ.get("CAPTION_LIMIT", "32")),
        )
    for prompt, result in zip(prompts, results, strict=True):
        sys.stdout.write(f"{prompt}\t{result if isinstance(result, str) else f'error: {result}'}\n")
    return 1 if any(not isinstance(r, str) for r in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
