"""The values: TypeSpec, Field and Signature are frozen, hashable, picklable; reprs and schema."""

from __future__ import annotations

import dataclasses
import pickle
import types
import typing

import pytest

import dspex_lab.signatures as signatures_pkg
from dspex_lab.errors import SignatureError
from dspex_lab.signatures import Field, Signature, TypeSpec, signature


def test_public_api_matches_all() -> None:
    public = {name for name, value in vars(signatures_pkg).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)
              and getattr(value, "__module__", "").startswith("dspex_lab")}
    assert set(signatures_pkg.__all__) == public


def test_typespec_is_frozen_hashable_and_picklable() -> None:
    t = TypeSpec.parse("dict[str, list[int | None]]")
    with pytest.raises(AttributeError):
        t.name = "list"  # type: ignore[misc]
    assert {t: 1}[TypeSpec.parse("Dict[str, List[Optional[int]]]")] == 1
    assert pickle.loads(pickle.dumps(t)) == t
    assert repr(t) == "TypeSpec('dict[str, list[int | None]]')"
    assert t.to_python() == dict[str, list[typing.Optional[int]]]  # noqa: UP045


@pytest.mark.parametrize(("text", "optional"), [
    ("int", False), ("int | None", True), ("Any", True), ("list[int | None]", False),
    ("Literal['a', None]", False),
])
def test_typespec_optional(text: str, optional: bool) -> None:
    assert TypeSpec.parse(text).optional is optional


def test_typespec_constructor_checks_and_normalizes() -> None:
    assert TypeSpec("Union", [TypeSpec("None"), TypeSpec("int")]) == TypeSpec.parse("int | None")
    assert TypeSpec("Union", [TypeSpec("int")]) == TypeSpec("int")
    assert str(TypeSpec("Literal", ["a", 1, "a"])) == "Literal['a', 1]"
    assert str(TypeSpec("tuple", [TypeSpec("int"), ...])) == "tuple[int, ...]"
    for name, args in [("int", [TypeSpec("str")]), ("dict", [TypeSpec("str")]), ("Foo", []),
                       ("list", ["str"]), ("Literal", []), ("Literal", [1.5]), ("Union", []),
                       ("tuple", [..., TypeSpec("int")])]:
        with pytest.raises(ValueError):
            TypeSpec(name, args)


def test_typespec_of_python_types() -> None:
    assert TypeSpec.of(typing.Optional[typing.List[int]]) == TypeSpec.parse("list[int] | None")  # noqa: UP006, UP045
    assert TypeSpec.of(int | str) == TypeSpec.parse("int | str")
    assert TypeSpec.of(typing.Literal["a", 2]) == TypeSpec.parse("Literal['a', 2]")
    assert TypeSpec.of(tuple[int, ...]) == TypeSpec.parse("tuple[int, ...]")
    for obj in (complex, frozenset[int], typing.Sequence[int], list[complex]):
        with pytest.raises(SignatureError, match="no signature text form"):
            TypeSpec.of(obj)  # its text would not read the same everywhere
        spec = TypeSpec.of(obj, custom=True)
        assert spec.to_python() is obj and spec == TypeSpec.of(obj, custom=True)
        assert spec.custom or spec.args[0].custom
    assert TypeSpec.of(typing.Tuple[int, str]).to_python() is not tuple[int, str]  # noqa: UP006
    assert TypeSpec.of(typing.Tuple[int, str]) == TypeSpec.parse("tuple[int, str]")  # noqa: UP006
    with pytest.raises(SignatureError, match="is not a type"):
        TypeSpec.of(3, custom=True)


def test_field_normalizes_typed_and_checks_values() -> None:
    STR = TypeSpec("str")
    assert Field("a", STR, None, "output", True).typed is False
    assert Field("a", STR, None, "input", True).typed is True
    assert Field("a", TypeSpec("int"), None, "input", False).typed is True
    assert str(Field("a", TypeSpec("int"), "it's", "input")) == "a: int \"it's\""
    for args in [("_a", STR, None, "input"), ("a b", STR, None, "input"),
                 ("a", "str", None, "input"), ("a", STR, None, "middle"), ("a", STR, 3, "input")]:
        with pytest.raises(SignatureError):
            Field(*args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Field("a", STR, None, "input").name = "b"  # type: ignore[misc]


def test_signature_constructor_checks() -> None:
    q = Field("q", TypeSpec("str"), None, "input")
    a = Field("a", TypeSpec("str"), None, "output")
    sig = Signature([q], [a])
    assert sig == signature("q: str -> a") and isinstance(sig.inputs, tuple)
    with pytest.raises(SignatureError, match="at least one input"):
        Signature((), (a,))
    with pytest.raises(SignatureError, match="Expected output Fields"):
        Signature((q,), (q,))
    with pytest.raises(SignatureError, match="used twice"):
        Signature((q,), (dataclasses.replace(q, kind="output"),))


def test_signature_views_and_immutability() -> None:
    sig = signature("question, context: list[str] -> answer: str 'short', confidence: float")
    assert sig.input_names == ("question", "context")
    assert sig.output_names == ("answer", "confidence")
    assert [f.name for f in sig.fields] == ["question", "context", "answer", "confidence"]
    assert sig.outputs[0].description == "short"
    with pytest.raises(dataclasses.FrozenInstanceError):
        sig.instructions = "x"  # type: ignore[misc]
    new = sig.with_instructions("Be brief.")
    assert new.instructions == "Be brief." and sig.instructions is None
    assert new.inputs == sig.inputs and new != sig


def test_instructions_are_normalized_like_dspy() -> None:
    assert signature("a -> b", "\n    Line one.\n      more\n").instructions == "Line one.\n  more"
    assert signature("a -> b", "   ").instructions is None


def test_signature_pickles_without_its_caches() -> None:
    sig = signature("q -> a: int", instructions="Go.")
    sig.validate_inputs({"q": "x"})  # fills the validator cache (closures cannot pickle)
    again = pickle.loads(pickle.dumps(sig))
    assert again == sig and hash(again) == hash(sig)
    assert again.validate_outputs({"a": 1}) == {"a": 1}


def test_reprs() -> None:
    sig = signature("q 'the <question>' -> a: int | None", instructions="Do it.")
    assert repr(sig) == "signature(\"q 'the <question>' -> a: int | None\", instructions='Do it.')"
    html = sig._repr_html_()
    assert "<table" in html and "&lt;question&gt;" in html and "<caption>Do it.</caption>" in html
    assert html.count("<tr>") == 3
    md = sig._repr_markdown_()
    assert "| `a` | `int \\| None` |  | output |" in md
    assert md.splitlines()[0] == "`q 'the <question>' -> a: int \\| None`"


def test_json_schema() -> None:
    sig = signature("q 'the question', tags: list[str], meta: dict[str, int] | None -> "
                    "label: Literal['yes', 'no'], pair: tuple[int, str], score: float",
                    instructions="Label it.")
    schema = sig.to_json_schema()
    assert schema["description"] == "Label it."
    inputs, outputs = schema["properties"]["inputs"], schema["properties"]["outputs"]
    assert inputs["required"] == ["q", "tags"]
    assert inputs["properties"]["q"] == {"description": "the question"}  # untyped: any value
    assert inputs["properties"]["meta"] == {"anyOf": [
        {"type": "object", "additionalProperties": {"type": "integer"}}, {"type": "null"}]}
    assert outputs["properties"]["label"] == {"enum": ["yes", "no"], "type": "string"}
    assert outputs["properties"]["pair"]["prefixItems"] == [{"type": "integer"},
                                                            {"type": "string"}]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    good = {"inputs": {"q": "x", "tags": ["a"], "meta": None},
            "outputs": {"label": "yes", "pair": [1, "a"], "score": 0.5}}
    jsonschema.validate(good, schema)
    for broken in ({**good, "outputs": {**good["outputs"], "label": "maybe"}},
                   {**good, "inputs": {"q": "x"}},
                   {**good, "outputs": {**good["outputs"], "pair": [1, "a", 2]}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
