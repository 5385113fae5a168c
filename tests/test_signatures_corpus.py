"""Our parser against DSPy's own: every corpus string builds the same fields, types and class."""

from __future__ import annotations

import typing
import warnings

import dspy
import pytest

from dspex_lab.errors import SignatureError
from dspex_lab.signatures import Signature, TypeSpec, parse_signature, signature

# Strings that dspy.Signature accepts. Annotations must be DSPy's own objects, spellings included
# (``List[int]`` is ``typing.List[int]``); TypeSpec equality stays normalized.
CORPUS = [
    "question -> answer",
    "question, context -> answer",
    "question: str -> answer: str",
    "question: str, context: list[str] -> answer: str, confidence: float",
    "text -> sentiment: bool",
    "text -> count: int",
    "a: int, b: int -> total: int",
    "document -> summary, keywords: list[str]",
    "items: list[int] -> sorted_items: list[int]",
    "record: dict[str, int] -> total: int",
    "record: dict[str, list[int]] -> flat: list[int]",
    "x: dict[str, list[int | None]] -> y",
    "x: int | None -> y",
    "x: None | int -> y",
    "x: Optional[int] -> y: Optional[str]",
    "x: Union[int, str] -> y",
    "x: Union[int, str, None] -> y: float | None",
    "text -> label: Literal['positive', 'negative', 'neutral']",
    'text -> label: Literal["yes", "no"]',
    "n -> digit: Literal[1, 2, 3]",
    "flag -> choice: Literal[True, False, None]",
    "pair: tuple[int, str] -> y",
    "values: tuple[float, ...] -> mean: float",
    "x: List[int] -> y: Dict[str, int]",
    "x: typing.List[str] -> y: typing.Optional[int]",
    "x: Tuple[int, int] -> y: Set[str]",
    "image: dspy.Image -> caption: str",
    "clip: dspy.Audio -> transcript",
    "history: dspy.History, question -> answer",
    "tools: list[dspy.Tool], question -> calls: dspy.ToolCalls",
    "x: Any -> y: Any",
    "x: bytes -> y",
    "question,context->answer",
    "  question  ,\n context : list[ str ]\n -> \n answer  ",
    "x: set[int] -> y: bool",
    "x: list -> y: dict",
    "x: tuple -> y",
    "x: Optional[list[dict[str, int]]] -> y",
    "x: list[Literal['a', 'b']] -> y",
    "café, naïve -> résumé",
    "camelCase, snake_case2 -> HTMLOutput",
    "query -> search_results: list[dict[str, str]]",
    "q -> a, b, c, d, e",
    "x: float -> y: int",
    "x: bool, y: bool -> z: bool",
    "x: dict[str, Any] -> y: list[Any]",
    "x: Union[list[int], dict[str, int]] -> y",
    "x: list[int | str] -> y: list[Optional[str]]",
    "x: Dict[str, List[Optional[int]]] -> y: Tuple[int, ...]",
    "json, schema -> copy",
]


def dspy_signature(text: str) -> type:
    with warnings.catch_warnings():  # pydantic warns about "json", "schema", "copy"
        warnings.simplefilter("ignore")
        return dspy.Signature(text)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40
    assert len(set(CORPUS)) == len(CORPUS)


@pytest.mark.parametrize("text", CORPUS)
def test_fields_match_dspy(text: str) -> None:
    theirs = dspy_signature(text)
    ours = parse_signature(text)
    assert ours.input_names == tuple(theirs.input_fields)
    assert ours.output_names == tuple(theirs.output_fields)
    for field in ours.fields:
        info = theirs.fields[field.name]
        assert info.json_schema_extra["__dspy_field_type"] == field.kind
        assert field.type.to_python() == info.annotation, field.name
        assert repr(field.type.to_python()) == repr(info.annotation), field.name
        assert TypeSpec.of(info.annotation) == field.type
        # DSPy's string signatures have no descriptions: desc is the "${name}" placeholder.
        assert info.json_schema_extra["desc"] == f"${{{field.name}}}"
        assert field.description is None
        if field.kind == "input":
            assert info.json_schema_extra["IS_TYPE_UNDEFINED"] is (not field.typed)


@pytest.mark.parametrize("text", CORPUS)
def test_to_dspy_equals_dspy(text: str) -> None:
    theirs = dspy_signature(text)
    built = parse_signature(text).to_dspy()
    assert issubclass(built, dspy.Signature)
    assert built.equals(theirs)  # instructions and every field's json_schema_extra
    assert built.instructions == theirs.instructions
    assert list(built.fields) == list(theirs.fields)
    for name, info in built.fields.items():
        other = theirs.fields[name].annotation
        assert info.annotation == other and repr(info.annotation) == repr(other)


@pytest.mark.parametrize("text", CORPUS)
def test_from_dspy_inverts_to_dspy(text: str) -> None:
    ours = parse_signature(text)
    assert Signature.from_dspy(dspy_signature(text)) == ours
    assert Signature.from_dspy(ours.to_dspy()) == ours


@pytest.mark.parametrize("text", CORPUS)
def test_canonical_text_reparses(text: str) -> None:
    ours = parse_signature(text)
    assert parse_signature(str(ours)) == ours
    assert str(parse_signature(str(ours))) == str(ours)
    # and DSPy reads our canonical text (which has no descriptions here) the same way
    assert dspy_signature(str(ours)).equals(ours.to_dspy())


def test_descriptions_become_desc() -> None:
    sig = signature("question 'the user question', ctx: list[str] \"passages\" -> "
                    "answer: int 'a number'", instructions="Answer.")

    class Manual(dspy.Signature):
        """Answer."""

        question: str = dspy.InputField(desc="the user question", IS_TYPE_UNDEFINED=True)
        ctx: list[str] = dspy.InputField(desc="passages", IS_TYPE_UNDEFINED=False)
        answer: int = dspy.OutputField(desc="a number")

    built = sig.to_dspy()
    assert built.equals(Manual)
    assert built.instructions == "Answer."
    assert Signature.from_dspy(Manual) == sig


def test_to_dspy_is_cached_per_signature() -> None:
    sig = signature("question -> answer: int")
    assert sig.to_dspy() is sig.to_dspy()
    assert Signature.from_dspy(sig.to_dspy()).to_dspy() is sig.to_dspy()


def test_to_dspy_runs_in_dspy_predict() -> None:
    sig = signature("question -> answer: int 'a number'", instructions="Reply with a number.")
    lm = dspy.utils.DummyLM([{"answer": "42"}])
    with dspy.context(lm=lm):
        result = dspy.Predict(sig.to_dspy())(question="6 * 7?")
    assert result.answer == 42
    assert sig.validate_outputs(dict(result)) == {"answer": 42}


def test_from_dspy_rejects_what_is_not_a_signature_class() -> None:
    with pytest.raises(SignatureError, match=r"needs a dspy\.Signature subclass"):
        Signature.from_dspy("question -> answer")  # type: ignore[arg-type]


def test_from_dspy_keeps_any_annotation_as_a_custom_type() -> None:
    class Custom(dspy.Signature):
        value: complex = dspy.InputField()
        answer: str = dspy.OutputField()

    sig = Signature.from_dspy(Custom)
    assert sig.inputs[0].type.custom and sig.inputs[0].type.to_python() is complex
    assert str(sig) == "value: complex -> answer" and sig.to_dspy() is Custom


def test_from_dspy_class_signature_with_docstring() -> None:
    class Qa(dspy.Signature):
        """Answer the question in one word."""

        question: str = dspy.InputField()
        hints: list[str] | None = dspy.InputField(desc="optional hints")
        answer: typing.Literal["yes", "no"] = dspy.OutputField()

    sig = Signature.from_dspy(Qa)
    assert sig.instructions == "Answer the question in one word."
    assert str(sig) == ("question: str, hints: list[str] | None 'optional hints' -> "
                        "answer: Literal['yes', 'no']")
    assert sig.to_dspy() is Qa
    rebuilt = parse_signature(str(sig), sig.instructions).to_dspy()
    assert rebuilt.instructions == Qa.instructions
    for name, info in Qa.fields.items():  # class-based fields carry no IS_TYPE_UNDEFINED key
        ours = rebuilt.fields[name]
        assert ours.annotation == info.annotation
        for key in ("desc", "prefix", "__dspy_field_type"):
            assert ours.json_schema_extra[key] == info.json_schema_extra[key]
