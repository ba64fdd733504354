"""The repository stands on its own: one version, and no pointer to a file a reader cannot open."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import areplicate

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "docs" / "api-notes.md"
# Everything a reader of the repository reads; the fixtures are third-party data.
SOURCES = [
    *ROOT.glob("*.md"),
    ROOT / "pyproject.toml",
    *ROOT.joinpath(".ci").iterdir(),
    *(
        path
        for folder in ("areplicate", "tests", "benchmarks", "examples", "docs")
        for path in ROOT.joinpath(folder).rglob("*")
        if path.suffix in {".py", ".md", ".toml", ".txt", ".sh"} and "fixtures" not in path.parts
    ),
]


class TestVersion:
    def test_comes_from_the_installed_metadata(self) -> None:
        assert areplicate.__version__ == importlib.metadata.version("areplicate")

    def test_is_written_only_in_pyproject(self) -> None:
        version = importlib.metadata.version("areplicate")
        written = [
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for path in ROOT.joinpath("areplicate").rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            and isinstance(node.value, ast.Constant)
            and node.value.value == version
        ]
        assert written == []

    def test_is_read_lazily(self) -> None:
        # importing the package does not read the metadata; asking for the version does
        script = (
            "import areplicate, areplicate._version as v;"
            "assert v.package_version.cache_info().currsize == 0;"
            "print(areplicate.__version__)"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        assert out.stdout.strip() == areplicate.__version__

    def test_unknown_attributes_still_raise(self) -> None:
        with pytest.raises(AttributeError, match="no_such_name"):
            areplicate.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


class TestStandsAlone:
    def test_no_pointer_outside_the_repository(self) -> None:
        # Spelled in pieces so this file does not match itself.
        outside = re.compile(
            "|".join([r"\bshared" + "/", "replicate-api" + r"\.md", "DESI" + r"GN\b"])
        )
        found = [
            f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in SOURCES
            if path.is_file()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if outside.search(line)
        ]
        assert found == []

    def test_every_link_to_the_api_notes_lands_on_a_heading(self) -> None:
        text = NOTES.read_text(encoding="utf-8")
        anchors = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
        assert {"prefer-wait", "cancel-after", "rate-limits", "webhooks"} <= anchors
        links = re.compile(r"api-notes\.md((?:#[\w-]+(?:,\s*)?)+)")
        broken = [
            f"{path.relative_to(ROOT)}: #{anchor}"
            for path in SOURCES
            if path.is_file()
            for match in links.finditer(path.read_text(encoding="utf-8"))
            for anchor in re.findall(r"#([\w-]+)", match.group(1))
            if anchor not in anchors
        ]
        inside = [a for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in anchors]
        assert broken == []
        assert inside == []
