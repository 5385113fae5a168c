"""Conformance (a): every string signature in DSPy's repository means the same in dspex_lab.

For each string of ``dspy_signatures.SIGNATURES`` (all of those in DSPy's docs and tests), the
class ``dspy.Signature(text)`` builds and the class ``dspex_lab.signature(text).to_dspy()``
builds must have the same fields in the same order, each with the same kind, annotation object
(same type, same ``repr``, so union members keep DSPy's order), ``desc``, ``prefix`` and
``IS_TYPE_UNDEFINED`` marker; the same instructions; and ``dspy.ChatAdapter`` and
``dspy.JSONAdapter`` must format the same messages for the same sample inputs. A string DSPy
rejects must raise ``SignatureError`` in dspex_lab.

Custom types are defined the way DSPy's docs and tests define them: module-level classes here
(``QueryResult``, ``MyContainer``, ``GlobalCustomType``, ``OuterContainer``...) and classes local
to the calling function (``LocalType``, ``CustomType``, ``Container2``, ``NestedType``...), so
both lookups (globals and locals of the caller) are exercised.

Deliberate differences, where DSPy's own behaviour is a bug (tested in ``test_deliberate_...``):

* ``"x, x -> y"``: DSPy silently merges the two inputs into one; dspex_lab rejects duplicates.
* ``"-> y"`` / ``"x ->"``: DSPy builds a signature with no inputs (or outputs); rejected here.
* ``"x: int = 3 -> y"``: DSPy drops the default silently; dspex_lab rejects ``=``.
* ``"x: None -> y"``: DSPy turns a ``None`` type into ``str``; dspex_lab asks for ``T | None``.
* ``"x: list[MyModel] -> y"`` with ``MyModel`` only in the caller's scope: DSPy looks custom
  names up only right after a ``:`` and fails ("Unknown name"); dspex_lab resolves custom names
  anywhere in a type, so ``list[MyModel]`` works like ``MyModel``.
* ``"x: List -> y"``: DSPy rejects bare typing aliases (``Field types must be types``);
  dspex_lab reads them as the builtin (``list``).
* ``"x: Literal[-1] -> y"``: DSPy cannot read negative numbers in ``Literal``; dspex_lab can.
* ``"x: datetime -> y"`` with no ``datetime`` in scope: DSPy imports the *module* and fails;
  dspex_lab means ``datetime.datetime``. Modules are never imported while parsing (only those
  already in ``sys.modules`` are used), where DSPy imports any module a dotted name starts with.
"""

from __future__ import annotations

import functools
import typing
import warnings
from pathlib import Path  # also named by "input: Path -> output: str" (DSPy's test)
from typing import Any

import dspy
import pydantic
import pytest

import dspex_lab
from dspex_lab.errors import SignatureError

from .dspy_signatures import SIGNATURES


# -- custom types, as DSPy's docs and tests define them ------------------------------------------
class QueryResult(pydantic.BaseModel):  # docs/docs/learn/programming/signatures.md
    text: str
    score: float


class MyContainer:  # docs/docs/learn/programming/signatures.md, tests/predict/test_predict.py
    class Query(pydantic.BaseModel):
        text: str

    class Score(pydantic.BaseModel):
        score: float


class MyType(pydantic.BaseModel):  # docs/docs/diving-deeper/signatures-in-depth.md names it
    value: str


class Contact(pydantic.BaseModel):  # tests/flex/test_flex_output_types.py
    name: str
    email: str


class Person(pydantic.BaseModel):  # tests/flex/test_flex_output_types.py
    name: str
    age: int


class GlobalCustomType(pydantic.BaseModel):  # tests/signatures/test_custom_types.py
    """A type defined at module level for testing module-level resolution."""

    value: str
    notes: str = ""


class OuterContainer:  # tests/signatures/test_custom_types.py
    class InnerType(pydantic.BaseModel):
        name: str
        value: int


# DSPy's test passes it as custom_types={"OffStackItem": ...}; here it is a module global.
OffStackItem = pydantic.create_model("OffStackItem", value=(str, ...))


@functools.cache
def both(text: str) -> tuple[Any, Any]:
    """``(dspy.Signature(text), dspex_lab's class)``, each a class or the exception raised.

    The local classes mirror DSPy's tests, which define them inside the test function.
    """
    class LocalType(pydantic.BaseModel):  # tests/signatures/test_custom_types.py
        value: str

    class CustomType(pydantic.BaseModel):  # tests/signatures/test_signature.py
        value: str

    class Container:
        class NestedType(pydantic.BaseModel):
            value: str

    NestedType = Container.NestedType  # noqa: F841 - named by the signature text

    class Container2:
        class Query(pydantic.BaseModel):
            text: str

        class Score(pydantic.BaseModel):
            score: float

    InnerTypeAlias = OuterContainer.InnerType  # noqa: F841 - named by the signature text

    with warnings.catch_warnings():  # pydantic: field names that shadow BaseModel attributes
        warnings.simplefilter("ignore")
        try:
            theirs: Any = dspy.Signature(text)
        except Exception as exc:
            theirs = exc
        try:
            ours: Any = dspex_lab.signature(text).to_dspy()
        except Exception as exc:
            ours = exc
    return theirs, ours


# -- sample inputs for the adapters ---------------------------------------------------------------
def _tool_fn(query: str) -> str:
    """Look something up."""
    return query


def sample(annotation: Any) -> Any:
    """A value of ``annotation`` to format (the same object goes to both adapters)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return sample(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return args[0]
    if origin in (list, set, frozenset):
        return [sample(args[0])] if args else ["x"]
    if origin is tuple:
        return tuple(sample(a) for a in args if a is not ...)
    if origin is dict:
        return {sample(args[0]): sample(args[1])} if args else {"k": "v"}
    simple = {str: "some text", int: 3, float: 0.5, bool: True, Any: "anything",
              Path: Path("/tmp/notes.txt")}
    if annotation in simple:
        return simple[annotation]
    if annotation is dspy.Image:
        return dspy.Image("https://example.com/clock.png")
    if annotation is dspy.File:
        return dspy.File(file_id="file-123", filename="report.pdf")
    if annotation is dspy.Tool:
        return dspy.Tool(_tool_fn)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation(**{n: sample(f.annotation) for n, f in annotation.model_fields.items()})
    raise AssertionError(f"no sample value for {annotation!r}")


def formatted(adapter: Any, cls: Any) -> list[dict[str, Any]]:
    inputs = {name: sample(f.annotation) for name, f in cls.input_fields.items()}
    return adapter.format(cls, demos=[], inputs=inputs)


def same_annotation(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b and repr(a) == repr(b) and \
        typing.get_args(a) == typing.get_args(b)


# -- the suite ------------------------------------------------------------------------------------
ACCEPTED = [(text, where) for text, where in SIGNATURES if not isinstance(both(text)[0], Exception)]
REJECTED = [(text, where) for text, where in SIGNATURES if isinstance(both(text)[0], Exception)]


def test_the_corpus_is_every_string_in_dspy_docs_and_tests() -> None:
    texts = [text for text, _ in SIGNATURES]
    assert len(texts) == len(set(texts)) >= 150
    assert len(ACCEPTED) >= 140 and REJECTED  # DSPy's repo also holds strings it rejects
    assert all(":" in where for _, where in SIGNATURES)


@pytest.mark.parametrize(("text", "where"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_same_class_as_dspy(text: str, where: str) -> None:
    theirs, ours = both(text)
    assert not isinstance(ours, Exception), f"{where}: dspex_lab rejects {text!r}: {ours}"
    assert ours.instructions == theirs.instructions
    assert list(ours.input_fields) == list(theirs.input_fields)
    assert list(ours.output_fields) == list(theirs.output_fields)
    for name, info in theirs.fields.items():
        mine = ours.fields[name]
        assert same_annotation(mine.annotation, info.annotation), \
            f"{where}: {name}: {mine.annotation!r} != DSPy's {info.annotation!r}"
        assert mine.json_schema_extra == info.json_schema_extra  # kind, desc, prefix, marker
    assert ours.equals(theirs)


@pytest.mark.parametrize(("text", "where"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_same_prompts_as_dspy(text: str, where: str) -> None:
    theirs, ours = both(text)
    for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter()):
        assert formatted(adapter, ours) == formatted(adapter, theirs), where


# Strings of the corpus that DSPy rejects and dspex_lab accepts on purpose (see the docstring):
# the field and the annotation dspex_lab gives it.
LENIENT = {"query: str -> found: list[OffStackItem]": ("found", list[OffStackItem])}


@pytest.mark.parametrize(("text", "where"), REJECTED, ids=[t for t, _ in REJECTED])
def test_rejected_by_both(text: str, where: str) -> None:
    theirs, ours = both(text)
    assert isinstance(theirs, Exception)
    if text in LENIENT:
        name, annotation = LENIENT[text]
        assert ours.fields[name].annotation == annotation
        return
    assert isinstance(ours, SignatureError), f"{where}: dspex_lab accepts {text!r}"


def test_custom_types_resolve_to_the_callers_objects() -> None:
    class LocalType(pydantic.BaseModel):
        value: str

    sig = dspex_lab.signature("query: MyContainer.Query, ctx: list[OuterContainer.InnerType] -> "
                              "found: LocalType, score: MyContainer.Score | None")
    cls = sig.to_dspy()
    assert cls.input_fields["query"].annotation is MyContainer.Query
    assert cls.input_fields["ctx"].annotation == list[OuterContainer.InnerType]
    assert cls.output_fields["found"].annotation is LocalType
    assert cls.output_fields["score"].annotation == typing.Optional[MyContainer.Score]  # noqa: UP045
    assert str(sig) == ("query: MyContainer.Query, ctx: list[OuterContainer.InnerType] -> "
                        "found: LocalType, score: MyContainer.Score | None")


@pytest.mark.parametrize(("text", "why"), [
    ("x, x -> y", "duplicate input field"),
    ("-> y", "no input fields"),
    ("x ->", "no output fields"),
    ("x: int = 3 -> y", "default values"),
    ("x: None -> y", "cannot have type None"),
])
def test_deliberate_strictness(text: str, why: str) -> None:
    """DSPy accepts these and silently builds something else than what is written."""
    theirs, ours = both(text)
    assert not isinstance(theirs, Exception)
    assert isinstance(ours, SignatureError) and why in ours.reason


def test_deliberate_leniency() -> None:
    """DSPy rejects these although their meaning is plain; dspex_lab builds the plain meaning."""
    class MyModel(pydantic.BaseModel):
        value: str

    cases = {
        "x: list[MyModel] -> y": list[MyModel],
        "x: List -> y": list,
        "x: Literal[-1, 2] -> y": typing.Literal[-1, 2],
    }
    for text, annotation in cases.items():
        with pytest.raises(ValueError):
            dspy.Signature(text)
        assert dspex_lab.signature(text).to_dspy().input_fields["x"].annotation == annotation
