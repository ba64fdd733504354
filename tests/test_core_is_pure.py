"""``areplicate._core`` stays pure: no network, event loop, clock, randomness, environment or files.

Two checks, because each misses what the other sees:

- an AST walk of every module ``_core`` reaches inside the package (``_core`` itself and what it
  imports from ``areplicate``, e.g. ``_errors``): each import must be on a short allow-list of pure
  modules, and nothing may call ``open``. This is the strict one: a new ``import time`` or
  ``import os`` fails here even though the interpreter has those loaded anyway.
- a fresh interpreter that loads ``_core`` without the package's ``__init__`` (which does pull in
  aiohttp) and then checks that no I/O library was loaded, not even through a dependency.
  Standard-library helpers such as ``email.utils`` load ``socket`` and ``random`` for their own
  sake, so this check names only the I/O stacks areplicate itself uses.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "areplicate"

# Modules `_core` may import: pure computation only. Add to this list only what does no I/O and
# reads no clock, randomness or environment.
ALLOWED = {
    "__future__",
    "attrs",
    "base64",
    "binascii",
    "collections",
    "dataclasses",
    "datetime",
    "difflib",
    "email",  # email.utils: HTTP-date parsing only
    "enum",
    "functools",
    "hashlib",
    "hmac",
    "html",
    "itertools",
    "json",
    "jsonschema",
    "math",
    "msgspec",  # a JSON parser (the fast extra), like json
    "operator",
    "re",
    "referencing",
    "string",
    "typing",
    "urllib",  # urllib.parse only, checked below
    "areplicate",  # followed: every areplicate module `_core` imports is walked too
}
# Submodules of the allowed names above that would do I/O.
DENIED = {"urllib.request", "urllib.response", "email.mime", "jsonschema.cli"}

# Loaded in the subprocess = a failure: the I/O stacks the rest of areplicate is built on. Not
# `urllib.request`, `ssl` or `subprocess`: older jsonschema releases (4.18) load them at import time
# for remote `$ref`s, which `_core` never resolves (the AST check above forbids importing them here).
IO_MODULES = {
    "aiohttp",
    "aiolimiter",
    "anyio",
    "asyncio",
    "concurrent",
    "multidict",
    "rich",
    "sniffio",
    "stamina",
    "yarl",
}


def _module_path(name: str) -> Path:
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from pkg import sub` may name a submodule
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _opens(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"open", "input", "print", "exec", "eval", "__import__"}
    ]


def _is_package_module(name: str) -> bool:
    return name.startswith("areplicate") and _module_path(name).exists()


def test_core_imports_only_pure_modules() -> None:
    start = ["areplicate._core"] + [
        f"areplicate._core.{p.stem}" for p in sorted((PACKAGE / "_core").glob("*.py"))
    ]
    seen: set[str] = set()
    todo = list(start)
    problems: list[str] = []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_path(module)
        where = path.relative_to(PACKAGE.parent)
        problems += [f"{where}:{line}: calls a builtin that does I/O" for line in _opens(path)]
        for line, name in _imports(path, module):
            if name.startswith("areplicate"):
                # `from areplicate._errors import X` yields `areplicate._errors` (walked) and
                # `areplicate._errors.X` (a name, not a module: skipped)
                if _is_package_module(name):
                    todo.append(name)
                continue
            top = name.split(".")[0]
            if top not in ALLOWED or any(name == d or name.startswith(d + ".") for d in DENIED):
                problems.append(f"{where}:{line}: imports {name}")
    assert "areplicate._errors" in seen  # the walk really follows package imports
    assert problems == [], "\n".join(problems)


def test_core_loads_no_io_library() -> None:
    # Load `_core` under a bare `areplicate` package object, so the real `__init__` (which imports
    # the client, and so aiohttp) does not run; then list what got loaded.
    script = f"""
import importlib, json, pkgutil, sys, types
pkg = types.ModuleType("areplicate")
pkg.__path__ = [{str(PACKAGE)!r}]
sys.modules["areplicate"] = pkg
core = importlib.import_module("areplicate._core")
for info in pkgutil.iter_modules(core.__path__):
    importlib.import_module("areplicate._core." + info.name)
print(json.dumps(sorted(sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "areplicate._core.retry" in loaded  # the script really imported the core
    bad = sorted(
        name for name in loaded if any(name == m or name.startswith(m + ".") for m in IO_MODULES)
    )
    assert bad == []
