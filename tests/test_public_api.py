"""The public surface: one sorted, complete ``__all__``; every name documented and presented as
``areplicate.X``; annotations that resolve; ``py.typed`` shipped; one version everywhere."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import inspect
import types
import typing

import attrs
import pytest

import areplicate

PUBLIC = sorted(areplicate.__all__)
# Submodules that are part of the API as modules (``areplicate.webhooks.verify``).
PUBLIC_MODULES = {"resources", "web", "webhooks"}


def test_all_is_sorted() -> None:
    assert areplicate.__all__ == sorted(areplicate.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(areplicate.__all__)) == len(areplicate.__all__)


def test_all_is_complete() -> None:
    # dir(), not vars(): some public names are loaded at first use (see test_lazy_import.py).
    public = {
        name
        for name in dir(areplicate)
        if not name.startswith("_")
        and (not isinstance(getattr(areplicate, name), types.ModuleType) or name in PUBLIC_MODULES)
    }
    assert public == set(areplicate.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from areplicate import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(areplicate.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_documented(name: str) -> None:
    obj = getattr(areplicate, name)
    doc = vars(obj).get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    assert doc, f"areplicate.{name} has no docstring of its own"
    assert doc.strip()


@pytest.mark.parametrize("name", PUBLIC)
def test_presented_as_areplicate(name: str) -> None:
    obj = getattr(areplicate, name)
    if isinstance(obj, type) or inspect.isfunction(obj):
        assert obj.__module__ == "areplicate", f"{name}.__module__ is {obj.__module__}"


@pytest.mark.parametrize("name", [n for n in PUBLIC if isinstance(getattr(areplicate, n), type)])
def test_public_members_of_classes_are_documented(name: str) -> None:
    cls = getattr(areplicate, name)
    undocumented = [
        member
        for member, value in vars(cls).items()
        if not member.startswith("_")
        and (inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod)))
        and not inspect.getdoc(value)
    ]
    assert not undocumented, f"{name}: {undocumented}"


# _fanout.py keeps ``from __future__ import annotations``, so its names resolve in the wrong module.
@pytest.mark.parametrize("name", [n for n in PUBLIC if attrs.has(getattr(areplicate, n))])
def test_annotations_resolve_after_the_rename(name: str) -> None:
    """``typing.get_type_hints`` (used by tools that inspect classes) works on the public names."""
    cls = getattr(areplicate, name)
    hints = typing.get_type_hints(cls)
    assert {a.name for a in attrs.fields(cls)} <= set(hints)


def test_py_typed_ships() -> None:
    marker = importlib.resources.files("areplicate").joinpath("py.typed")
    assert marker.is_file()


def test_one_version() -> None:
    version = importlib.metadata.version("areplicate")
    assert areplicate.__version__ == version
    client = areplicate.Client("r8_x", environ={})
    assert client.config.user_agent == f"areplicate/{version}"
