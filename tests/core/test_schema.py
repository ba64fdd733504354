"""The pure input-schema check: every problem, with its field path and what is allowed."""

from __future__ import annotations

import io
import pathlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from areplicate._core.schema import InputCheck, InputSchema, check_input, inline_refs, input_schema


def cog_document(**extra_props: Any) -> dict[str, Any]:
    """A version document shaped the way Cog writes one (enums via allOf + $ref)."""
    properties: dict[str, Any] = {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
        "width": {
            "type": "integer",
            "title": "Width",
            "default": 1024,
            "minimum": 64,
            "maximum": 2048,
            "x-order": 1,
        },
        "guidance": {
            "type": "number",
            "title": "Guidance",
            "default": 7.5,
            "minimum": 1,
            "maximum": 50,
            "x-order": 2,
        },
        "scheduler": {
            "allOf": [{"$ref": "#/components/schemas/scheduler"}],
            "default": "K_EULER",
            "x-order": 3,
        },
        "image": {"type": "string", "format": "uri", "title": "Image", "x-order": 4},
        "watermark": {"type": "boolean", "default": True, "x-order": 5},
    }
    properties.update(extra_props)
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "title": "Input",
                    "required": ["prompt"],
                    "properties": properties,
                },
                "Output": {"type": "string", "title": "Output"},
                "scheduler": {
                    "enum": ["DDIM", "K_EULER", "PNDM"],
                    "type": "string",
                    "title": "scheduler",
                    "description": "An enumeration.",
                },
            }
        },
    }


DOC = cog_document()


def check(input: Any, doc: dict[str, Any] | None = None) -> InputCheck:
    return check_input(DOC if doc is None else doc, input)


class TestValidInput:
    def test_minimal_input_passes(self) -> None:
        assert check({"prompt": "a cat"}) == InputCheck()

    def test_every_field_in_range_passes(self) -> None:
        result = check(
            {
                "prompt": "a cat",
                "width": 64,
                "guidance": 50.0,
                "scheduler": "PNDM",
                "image": "https://example.com/a.png",
                "watermark": False,
            }
        )
        assert result.ok
        assert result == InputCheck()

    def test_a_float_with_an_integral_value_is_an_integer(self) -> None:
        assert check({"prompt": "x", "width": 512.0}).ok

    def test_data_uri_passes_for_a_uri_input(self) -> None:
        assert check({"prompt": "x", "image": "data:image/png;base64,AAAA"}).ok

    @pytest.mark.parametrize(
        "value",
        [pathlib.Path("cat.png"), b"\x89PNG", io.BytesIO(b"x")],
        ids=["path", "bytes", "file"],
    )
    def test_file_like_values_pass_for_a_uri_input(self, value: Any) -> None:
        # The client uploads these before sending, so they are fine where a URL is wanted.
        assert check({"prompt": "x", "image": value}).ok

    def test_a_tuple_counts_as_an_array(self) -> None:
        doc = cog_document(tags={"type": "array", "items": {"type": "string"}, "x-order": 9})
        assert check({"prompt": "x", "tags": ("a", "b")}, doc).ok


class TestErrors:
    def test_missing_required_names_the_field(self) -> None:
        result = check({"width": 512})
        assert result.errors == ("prompt: required, but missing",)

    def test_below_minimum_names_the_range(self) -> None:
        (error,) = check({"prompt": "x", "width": 10}).errors
        assert error == "width: 10 is too small; allowed: from 64 to 2048"

    def test_above_maximum_names_the_range(self) -> None:
        (error,) = check({"prompt": "x", "guidance": 51.5}).errors
        assert error == "guidance: 51.5 is too large; allowed: from 1 to 50"

    def test_enum_through_allof_ref_lists_the_allowed_values(self) -> None:
        (error,) = check({"prompt": "x", "scheduler": "EULER"}).errors
        assert error.startswith("scheduler: ")
        assert '"EULER" is not an allowed value' in error
        assert 'allowed: "DDIM", "K_EULER", "PNDM"' in error

    def test_enum_suggests_the_value_that_differs_only_in_case(self) -> None:
        (error,) = check({"prompt": "x", "scheduler": "k_euler"}).errors
        assert error.endswith('did you mean "K_EULER"?')

    @pytest.mark.parametrize(
        ("field", "value", "expected"),
        [
            ("width", "512", 'width: expected integer, got string "512"'),
            ("width", True, "width: expected integer, got boolean true"),
            ("prompt", 5, "prompt: expected string, got integer 5"),
            ("guidance", [1], "guidance: expected number, got array [1]"),
            ("watermark", "yes", 'watermark: expected boolean, got string "yes"'),
            ("image", 3, "image: expected string (a URL or file), got integer 3"),
        ],
    )
    def test_wrong_type_names_field_expected_and_given(
        self, field: str, value: Any, expected: str
    ) -> None:
        inp = {"prompt": "x", field: value}
        assert check(inp).errors == (expected,)

    def test_every_problem_is_reported_at_once_in_input_order(self) -> None:
        result = check({"scheduler": "nope", "width": 4096, "guidance": "high"})
        assert [e.split(":")[0] for e in result.errors] == [
            "prompt",
            "width",
            "guidance",
            "scheduler",
        ]
        assert not result.ok

    def test_required_null_is_a_type_error(self) -> None:
        assert check({"prompt": None}).errors == ("prompt: expected string, got null",)

    def test_input_that_is_not_a_mapping(self) -> None:
        result = check(["prompt"])
        assert result.errors == (
            "input: expected an object mapping input names to values, got array",
        )

    def test_nested_paths_are_spelled_out(self) -> None:
        doc = cog_document(
            sizes={
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "maxItems": 2,
                "x-order": 9,
            }
        )
        result = check({"prompt": "x", "sizes": [1, 0, 5]}, doc)
        assert result.errors == (
            "sizes: 3 items is too many; allowed: at most 2 items",
            "sizes[1]: 0 is too small; allowed: at least 1",
        )

    def test_string_length_and_pattern(self) -> None:
        doc = cog_document(
            code={"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"}
        )
        assert check({"prompt": "x", "code": "A"}, doc).errors == (
            "code: text of 1 characters is too short; allowed: 2 to 4 characters",
            'code: "A" does not match the pattern "^[a-z]+$"',
        )

    def test_openapi_boolean_exclusive_minimum(self) -> None:
        doc = cog_document(temp={"type": "number", "minimum": 0, "exclusiveMinimum": True})
        assert check({"prompt": "x", "temp": 0.5}, doc).ok
        assert check({"prompt": "x", "temp": 0}, doc).errors == (
            "temp: 0 is too small; allowed: greater than 0",
        )

    def test_json_schema_numeric_exclusive_maximum(self) -> None:
        doc = cog_document(top_p={"type": "number", "minimum": 0, "exclusiveMaximum": 1})
        assert check({"prompt": "x", "top_p": 1}, doc).errors == (
            "top_p: 1 is too large; allowed: at least 0 and less than 1",
        )

    def test_anyof_explains_each_alternative(self) -> None:
        doc = cog_document(seed={"anyOf": [{"type": "integer"}, {"type": "null"}], "x-order": 9})
        assert check({"prompt": "x", "seed": 3}, doc).ok
        assert check({"prompt": "x", "seed": None}, doc).ok
        assert check({"prompt": "x", "seed": "3"}, doc).errors == (
            'seed: "3" matches none of the allowed forms (expected integer, got string "3")',
        )

    def test_long_values_are_shortened(self) -> None:
        (error,) = check({"prompt": "x", "width": "9" * 500}).errors
        assert len(error) < 150
        assert error.endswith("…")


class TestWarnings:
    def test_unknown_key_is_a_warning_not_an_error(self) -> None:
        result = check({"prompt": "x", "promt": "y"})
        assert result.ok
        assert result.warnings == (
            'promt: not an input of this model, so the API will ignore it; did you mean "prompt"?',
        )

    def test_unknown_key_without_a_near_match_lists_the_inputs(self) -> None:
        (warning,) = check({"prompt": "x", "zzz": 1}).warnings
        assert warning.endswith(
            "this model's inputs are: prompt, width, guidance, scheduler, image, watermark"
        )

    def test_unknown_key_is_not_type_checked(self) -> None:
        doc = cog_document()
        doc["components"]["schemas"]["Input"]["additionalProperties"] = False
        result = check({"prompt": "x", "extra": object()}, doc)
        assert result.ok
        assert len(result.warnings) == 1

    def test_null_for_an_optional_input_is_a_warning(self) -> None:
        result = check({"prompt": "x", "width": None})
        assert result.ok
        assert result.warnings == (
            (
                "width: null is not a valid value for this input and the API may reject it; "
                "leave the key out to use the model's default"
            ),
        )

    def test_openapi_nullable_admits_null_silently(self) -> None:
        doc = cog_document(seed={"type": "integer", "nullable": True})
        assert check({"prompt": "x", "seed": None}, doc) == InputCheck()

    def test_errors_and_warnings_together(self) -> None:
        result = check({"width": 1, "colour": "red"})
        assert [e.split(":")[0] for e in result.errors] == ["prompt", "width"]
        assert [w.split(":")[0] for w in result.warnings] == ["colour"]

    @pytest.mark.parametrize("doc", [None, {}, {"components": {"schemas": {}}}])
    def test_no_schema_checks_nothing_and_says_so(self, doc: Any) -> None:
        result = check_input(doc, {"anything": 1})
        assert result.ok
        assert result.warnings == (
            "input: this version publishes no input schema, so nothing was checked",
        )

    def test_a_broken_ref_becomes_a_warning(self) -> None:
        doc = cog_document(mode={"allOf": [{"$ref": "#/components/schemas/Missing"}]})
        result = check({"prompt": "x", "mode": "a"}, doc)
        assert result.ok
        assert "could not be used" in result.warnings[-1]


class TestInputSchema:
    def test_refs_are_inlined(self) -> None:
        schema = input_schema(DOC)
        assert schema["properties"]["scheduler"]["allOf"][0]["enum"] == ["DDIM", "K_EULER", "PNDM"]
        assert "$ref" not in repr(schema)

    def test_inlining_leaves_the_document_alone(self) -> None:
        doc = cog_document()
        input_schema(doc)
        assert doc == cog_document()

    def test_cyclic_and_foreign_refs_are_left_in_place(self) -> None:
        doc = {
            "components": {
                "schemas": {"Node": {"properties": {"next": {"$ref": "#/components/schemas/Node"}}}}
            }
        }
        node = inline_refs({"$ref": "#/components/schemas/Node"}, doc)
        assert node["properties"]["next"] == {"$ref": "#/components/schemas/Node"}
        assert inline_refs({"$ref": "https://x/y"}, doc) == {"$ref": "https://x/y"}

    def test_names_follow_x_order_and_required_is_known(self) -> None:
        compiled = InputSchema(DOC)
        assert compiled.names == ["prompt", "width", "guidance", "scheduler", "image", "watermark"]
        assert compiled.required == frozenset({"prompt"})
        assert compiled.available
        assert repr(compiled) == "<InputSchema 6 inputs, 1 required>"

    def test_a_key_with_a_slash_is_looked_up_correctly(self) -> None:
        doc = cog_document(**{"a/b~c": {"type": "integer", "nullable": True}})
        assert check({"prompt": "x", "a/b~c": None}, doc) == InputCheck()


@given(st.integers())
def test_range_errors_exactly_outside_the_range(width: int) -> None:
    errors = InputSchema(DOC).check({"prompt": "x", "width": width}).errors
    if 64 <= width <= 2048:
        assert errors == ()
    else:
        assert len(errors) == 1
        assert errors[0].startswith(f"width: {width} is too ")
        assert errors[0].endswith("allowed: from 64 to 2048")


@given(st.text(max_size=12))
def test_enum_errors_exactly_outside_the_enum(value: str) -> None:
    errors = InputSchema(DOC).check({"prompt": "x", "scheduler": value}).errors
    assert (errors == ()) == (value in {"DDIM", "K_EULER", "PNDM"})
