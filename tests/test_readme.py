"""Every Python block in README.md is checked: ```python blocks run, ```py blocks compile.

```python blocks run in order, sharing one namespace, with top-level ``await`` allowed;
``REPLICATE_API_TOKEN`` and ``REPLICATE_BASE_URL`` point at a fake that serves the models the README
names. Illustrations that need what the README cannot provide (a web framework, your files) use
```py fences: they are compiled the same way, so they cannot drift into invalid Python.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from areplicate.testing import FakeReplicate, FileOut

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
ILLUSTRATION = re.compile(r"^```py\n(.*?)^```", re.DOTALL | re.MULTILINE)
# any other fence that could hold Python and would escape both checks
OTHER_PYTHON = re.compile(r"^```(?:python3|py3|pycon|ipython)\b", re.MULTILINE)


def blocks(fence: re.Pattern[str] = BLOCK) -> list[str]:
    return fence.findall(README.read_text(encoding="utf-8"))


def test_readme_illustrations_compile() -> None:
    found = blocks(ILLUSTRATION)
    assert len(found) >= 3
    for number, source in enumerate(found, 1):
        compile(
            source, f"README.md py block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
    assert OTHER_PYTHON.findall(README.read_text(encoding="utf-8")) == []


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    fence = text.index("```bash\n")
    commands = text[fence:].split("```")[1].strip().splitlines()[1:]
    assert commands == [
        "python -m pip install -e '.[dev]' && python -m areplicate demo",
        "python -m pip install -e '.[dev]' && python -m pytest",
    ]
    assert text.index("```bash") < text.index("\n## ")


@pytest.fixture
async def readme_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeReplicate]:
    fake = FakeReplicate()

    def hello(text: str = "") -> str:
        return f"hello, {text}"

    async def chat(prompt: str = "") -> AsyncIterator[str]:
        for word in ("Once", " upon", " a", " time."):
            yield word

    def draw(prompt: str = "") -> FileOut:
        return FileOut(b"\x89PNG\r\n\x1a\n" + prompt.encode(), f"{prompt}.png")

    def caption(image: str) -> str:
        return f"a caption of {image.rsplit('/', 1)[-1]}"

    fake.add_model("acme/hello-world", hello)
    fake.add_model("acme/chat", chat)
    fake.add_model("acme/draw", draw)
    fake.add_model("acme/caption", caption)
    async with fake.serve() as url:
        monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_readme_example")
        monkeypatch.setenv("REPLICATE_BASE_URL", url)
        yield fake


async def test_readme_python_blocks_run(
    readme_api: FakeReplicate, capsys: pytest.CaptureFixture[str]
) -> None:
    found = blocks()
    assert len(found) >= 4
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, source in enumerate(found, 1):
        code = compile(
            source, f"README.md block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        result = eval(code, namespace)  # our own README, run on purpose
        if result is not None:
            await result
    out = capsys.readouterr().out
    assert "hello, hello" in out
    assert "Once upon a time." in out
    assert "20 done, 0 failed" in out
    assert "['a caption of cat.png', 'a caption of dog.png']" in out
    assert "20/20 | draw: 0 running, 0 waiting, 20 done, 0 errors | caption:" in out
    assert "acme/chat Once upon a time." in out
    assert readme_api.server_errors == []
