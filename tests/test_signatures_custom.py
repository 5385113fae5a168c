"""Custom types (resolved from the caller like DSPy does), DSPy's exact annotation objects,
from_dspy of any class signature, and untyped inputs that take any value."""

from __future__ import annotations

import enum
import pickle
import sys
import threading
import typing

import cloudpickle
import dspy
import pydantic
import pytest

import dspex_lab
from dspex_lab.errors import SignatureError, ValidationError
from dspex_lab.programs import as_program
from dspex_lab.signatures import Signature, TypeSpec, parse_signature, signature


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Ticket(pydantic.BaseModel):
    title: str
    priority: int = 1


class Shelf:
    class Book(pydantic.BaseModel):
        title: str


def fresh_answer_class() -> type:
    class Answer(pydantic.BaseModel):
        text: str
    return Answer


def test_custom_names_resolve_from_locals_globals_and_dotted_names() -> None:
    class Local(pydantic.BaseModel):
        value: int

    sig = parse_signature("ticket: Ticket, book: Shelf.Book, tags: list[Local] -> color: Color")
    types = [f.type for f in sig.fields]
    assert [t.to_python() for t in types] == [Ticket, Shelf.Book, list[Local], Color]
    assert [t.custom for t in types] == [True, True, False, True]
    assert str(sig) == "ticket: Ticket, book: Shelf.Book, tags: list[Local] -> color: Color"
    assert parse_signature(str(sig)) == sig


def test_names_are_looked_up_in_the_users_frame_not_dspex_labs() -> None:
    class Local(pydantic.BaseModel):
        value: int

    program = as_program("item: Local -> answer")  # signature() is called inside dspex_lab
    assert program.signature.inputs[0].type.to_python() is Local
    assert dspex_lab.signature("item: Local -> answer").to_dspy().input_fields[
        "item"].annotation is Local


def test_notebook_globals_are_found_from_any_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    Answer = fresh_answer_class()
    monkeypatch.setattr(sys.modules["__main__"], "NotebookAnswer", Answer, raising=False)
    found: list = []
    thread = threading.Thread(target=lambda: found.append(
        parse_signature("q -> a: NotebookAnswer").outputs[0].type.to_python()))
    thread.start()
    thread.join()
    assert found == [Answer]


def test_unknown_custom_names_say_where_to_define_them() -> None:
    with pytest.raises(SignatureError, match="defined or imported where the signature") as info:
        parse_signature("q -> a: NoSuchModel")
    assert info.value.column == 8
    with pytest.raises(SignatureError, match="'Shelf' has no attribute 'Cup'"):
        parse_signature("q -> a: Shelf.Cup")
    with pytest.raises(SignatureError, match="not a type"):
        parse_signature("q -> a: fresh_answer_class")


def test_the_cache_never_returns_a_class_that_was_redefined() -> None:
    Answer = fresh_answer_class()
    first = signature("q -> a: Answer")
    assert first.outputs[0].type.to_python() is Answer
    assert signature("q -> a: Answer") is first  # the same objects: served from the cache
    Answer = fresh_answer_class()  # a notebook cell run again
    second = signature("q -> a: Answer")
    assert second is not first and second != first
    assert second.to_dspy().output_fields["a"].annotation is Answer
    assert signature("q -> a: Answer") is second


def test_custom_typespecs_are_frozen_hashable_and_cloudpickle() -> None:
    Answer = fresh_answer_class()
    spec = TypeSpec.of(Answer, custom=True)
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]
    assert {spec: 1}[TypeSpec.of(Answer, custom=True)] == 1
    assert spec != TypeSpec.of(fresh_answer_class(), custom=True)
    sig = signature("q: list[Ticket] -> a: Answer | None, c: Color")
    assert pickle.loads(pickle.dumps(TypeSpec.of(Ticket, custom=True))).to_python() is Ticket
    again = cloudpickle.loads(cloudpickle.dumps(sig))
    assert again == sig and hash(again) == hash(sig)
    assert again.to_dspy().output_fields["a"].annotation == typing.Optional[Answer]  # noqa: UP045


@pytest.mark.parametrize(("text", "annotation"), [
    ("x: Tuple[str, int] -> y", typing.Tuple[str, int]),  # noqa: UP006
    ("x: typing.List[int] -> y", typing.List[int]),  # noqa: UP006
    ("x: None | int -> y", typing.Union[None, int]),  # noqa: UP007
    ("x: str | (int | float) | None -> y", typing.Union[str, int, float, None]),  # noqa: UP007
    ("x: Sequence[int] -> y", typing.Sequence[int]),
    ("x: dspy.Reasoning -> y", dspy.Reasoning),
    ("x: dspy.Code -> y", dspy.Code),
])
def test_to_python_is_dspys_object(text: str, annotation: typing.Any) -> None:
    ours = signature(text).inputs[0].type.to_python()
    theirs = dspy.Signature(text).input_fields["x"].annotation
    assert ours == theirs == annotation
    assert repr(ours) == repr(theirs) and typing.get_args(ours) == typing.get_args(theirs)


def test_equality_stays_normalized_across_spellings() -> None:
    assert signature("x: Tuple[str, int] -> y") == signature("x: tuple[str, int] -> y")
    assert TypeSpec.parse("None | int") == TypeSpec.parse("int | None")
    assert str(TypeSpec.parse("None | (str | int)")) == "str | int | None"


class Everything(dspy.Signature):
    """Classify the ticket."""

    ticket: Ticket = dspy.InputField(prefix="The ticket:")
    history: list[Ticket] = dspy.InputField(desc="earlier tickets")
    labels: dict[str, list[str]] = dspy.InputField()
    image: dspy.Image | None = dspy.InputField()
    shelf: Shelf.Book = dspy.InputField()
    notes = dspy.InputField()
    color: Color = dspy.OutputField()
    level: typing.Literal["low", "high"] = dspy.OutputField()
    score: typing.Optional[float] = dspy.OutputField()  # noqa: UP045
    related: typing.Sequence[int] = dspy.OutputField()


def test_from_dspy_takes_every_annotation_and_keeps_the_class() -> None:
    sig = Signature.from_dspy(Everything)
    assert sig.to_dspy() is Everything
    assert str(sig) == ("ticket: Ticket, history: list[Ticket] 'earlier tickets', labels: "
                        "dict[str, list[str]], image: dspy.Image | None, shelf: Shelf.Book, notes "
                        "-> color: Color, level: Literal['low', 'high'], score: float | None, "
                        "related: Sequence[int]")
    for name, info in Everything.fields.items():
        assert sig.to_dspy().fields[name].annotation is info.annotation
    again = cloudpickle.loads(cloudpickle.dumps(sig))  # how it reaches a worker
    assert again == sig and again.to_dspy().equals(Everything)
    assert again.to_dspy().input_fields["ticket"].json_schema_extra["prefix"] == "The ticket:"
    renamed = sig.with_instructions("Be brief.")
    assert renamed.to_dspy().instructions == "Be brief."
    assert renamed.to_dspy().input_fields["ticket"].json_schema_extra["prefix"] == "The ticket:"


def test_untyped_inputs_take_any_value_typed_ones_are_still_checked() -> None:
    sig = signature("claim, notes -> query")
    for notes in ([], ["a"], 3, {"k": 1}, "text"):
        assert sig.validate_inputs({"claim": "c", "notes": notes})["notes"] == notes
    with pytest.raises(ValidationError, match="any value but None"):
        sig.validate_inputs({"claim": "c", "notes": None})
    with pytest.raises(ValidationError, match="expected str"):
        signature("claim: str -> query").validate_inputs({"claim": 3})
    with pytest.raises(ValidationError, match="expected str"):  # an untyped output is a str
        sig.validate_outputs({"query": 3})
    assert str(sig) == "claim, notes -> query"
    assert sig.to_json_schema()["properties"]["inputs"]["properties"]["notes"] == {}


def test_custom_values_are_checked_with_pydantic() -> None:
    sig = signature("ticket: Ticket, color: Color, tickets: list[Ticket] -> a")
    good = sig.validate_inputs({"ticket": {"title": "t"}, "color": "red",
                                "tickets": [Ticket(title="u")]})
    assert good == {"ticket": Ticket(title="t"), "color": Color.RED,
                    "tickets": [Ticket(title="u")]}
    with pytest.raises(ValidationError) as info:
        sig.validate_inputs({"ticket": {"priority": 2}, "color": "green", "tickets": [3]})
    assert [field for field, _ in info.value.problems] == ["ticket", "color", "tickets[0]"]
    assert "title: Field required" in str(info.value)


@pytest.mark.slow
def test_predict_with_custom_and_untyped_inputs_runs_in_a_worker(dspy_lm) -> None:
    class Query(pydantic.BaseModel):
        text: str

    pred = dspex_lab.predict("query: Query, notes -> answer", query=Query(text="What is 2 + 3?"),
                             notes=[], lm=dspy_lm, cache=False)
    assert isinstance(pred.answer, str) and pred._dspex.route == "pool"

    class Paint(dspy.Signature):
        """Pick a color."""

        color: Color = dspy.InputField()
        answer: str = dspy.OutputField()

    pred = dspex_lab.predict(Paint, color=Color.RED, lm=dspy_lm, cache=False)
    assert isinstance(pred.answer, str)


@pytest.mark.slow
def test_run_over_a_frame_with_custom_outputs_and_untyped_list_inputs(dspy_lm) -> None:
    import pandas as pd

    class Answer(pydantic.BaseModel):
        text: str

    df = pd.DataFrame({"question": ["What is 2 + 3?", "What is the capital of France?"],
                       "notes": [["a"], []]})
    out = dspex_lab.run("question, notes -> answer: Answer, color: Color", df, lm=dspy_lm)
    assert out["error"].isna().all()
    assert all(isinstance(a, Answer) for a in out["answer"])
    assert all(isinstance(c, Color) for c in out["color"])
