"""examples/pipeline.py runs offline (``--fake``): every prompt gets its caption, in order."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pipeline_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_example_captions_every_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = load()
    prompts = [f"p{i}" for i in range(6)]
    assert await pipeline.main(["--fake", *prompts]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"p{i}\ta caption of p{i}.png" for i in range(6)]
    assert "6/6 done (0 errors) | draw: 0 running, 0 waiting, 6 done" in captured.err


async def test_no_prompts_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert await load().main([]) == 2
    assert "--fake" in capsys.readouterr().err
