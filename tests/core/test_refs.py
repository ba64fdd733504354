"""Model references: the three accepted forms round-trip; everything else names the accepted forms."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from areplicate import InvalidReferenceError, ModelRef, parse_ref

HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NAME = st.builds(str.__add__, st.sampled_from(ALNUM), st.text(ALNUM + "._-", max_size=30))
VALID = re.compile(
    r"[0-9a-f]{64}|[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9a-f]{64})?"
)
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


class TestValidForms:
    @given(owner=NAME, name=NAME)
    def test_official_model_round_trips(self, owner: str, name: str) -> None:
        ref = parse_ref(f"{owner}/{name}")
        assert (ref.owner, ref.name, ref.version) == (owner, name, None)
        assert ref.model == f"{owner}/{name}"
        assert str(ref) == f"{owner}/{name}"

    @given(owner=NAME, name=NAME, version=HEX64)
    def test_versioned_model_round_trips(self, owner: str, name: str, version: str) -> None:
        text = f"{owner}/{name}:{version}"
        ref = parse_ref(text)
        assert (ref.owner, ref.name, ref.version) == (owner, name, version)
        assert str(ref) == text
        assert parse_ref(str(ref)) == ref

    @given(version=HEX64)
    def test_bare_version_round_trips(self, version: str) -> None:
        ref = parse_ref(version)
        assert ref == ModelRef(None, None, version)
        assert ref.model is None
        assert str(ref) == version

    def test_surrounding_whitespace_is_ignored(self) -> None:
        assert str(parse_ref(f"  meta/llama-2-70b-chat:{VERSION}\n")) == (
            f"meta/llama-2-70b-chat:{VERSION}"
        )

    @pytest.mark.parametrize(
        "text",
        ["black-forest-labs/flux-schnell", "stability-ai/sdxl", "a/b", "A.b_c/d-e.1", VERSION],
    )
    def test_real_world_refs(self, text: str) -> None:
        assert str(parse_ref(text)) == text


class TestInvalidForms:
    @given(text=st.text(max_size=80) | st.text(alphabet="abcdef0123456789/:._- A\n", max_size=90))
    @example("owner/name:")
    @example("owner/name:" + VERSION.upper())
    @example("owner/name:" + VERSION[:-1])
    @example("owner/")
    @example("/name")
    @example("owner/name/extra")
    @example("owner:name")
    @example("")
    @example("-owner/name")
    @example("owner/name:latest")
    @example("ownér/name")
    def test_anything_else_raises_naming_the_accepted_forms(self, text: str) -> None:
        if VALID.fullmatch(text.strip()):
            assert str(parse_ref(text)) == text.strip()
            return
        with pytest.raises(InvalidReferenceError) as info:
            parse_ref(text)
        message = str(info.value)
        assert "owner/name" in message
        assert "owner/name:<64-hex version id>" in message
        assert "64-hex version id" in message

    @pytest.mark.parametrize("value", [None, 42, b"owner/name", ["owner/name"]])
    def test_non_strings_raise_the_same_error(self, value: object) -> None:
        with pytest.raises(InvalidReferenceError, match="must be a string"):
            parse_ref(value)  # type: ignore[arg-type]

    def test_it_is_a_value_error_too(self) -> None:
        with pytest.raises(ValueError, match="no '/' between owner and name"):
            parse_ref("just-a-name")

    def test_message_quotes_the_bad_reference(self) -> None:
        with pytest.raises(InvalidReferenceError, match=re.escape("'owner/name:latest'")):
            parse_ref("owner/name:latest")
