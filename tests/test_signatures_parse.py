"""The parser: accepted forms, canonical text, and errors with a caret at the right column."""

from __future__ import annotations

import pytest

from dspex_lab.errors import SignatureError
from dspex_lab.signatures import TypeSpec, parse_signature, parse_type, signature


def types_of(text: str) -> list[str]:
    return [str(f.type) for f in parse_signature(text).fields]


def test_untyped_fields_are_str() -> None:
    sig = parse_signature("question, context -> answer")
    assert [str(f.type) for f in sig.fields] == ["str", "str", "str"]
    assert [f.typed for f in sig.fields] == [False, False, False]
    assert [f.kind for f in sig.fields] == ["input", "input", "output"]


def test_descriptions_in_either_quote_with_or_without_type() -> None:
    sig = parse_signature("q 'the question', ctx: list[str] \"passages\" -> "
                          "a: str \"one word\", b 'it\\'s'")
    assert [f.description for f in sig.fields] == ["the question", "passages", "one word", "it's"]
    assert str(sig) == "q 'the question', ctx: list[str] 'passages' -> a 'one word', b \"it's\""


def test_escapes_in_descriptions() -> None:
    sig = parse_signature(r"x 'tab\there\nnew \x41\u00e9\U0001F600 \\ \d' -> y")
    assert sig.inputs[0].description == "tab\there\nnew Aé\U0001f600 \\ \\d"
    assert parse_signature(str(sig)) == sig


def test_multiline_description_and_whitespace_everywhere() -> None:
    text = "\n  question\t:\n str\n 'line one\nline two' ,\n ctx :list [ str ]\n->\n answer \n"
    sig = parse_signature(text)
    assert sig.inputs[0].description == "line one\nline two"
    assert str(sig) == "question: str 'line one\\nline two', ctx: list[str] -> answer"


@pytest.mark.parametrize(("text", "canonical"), [
    ("list[str]", "list[str]"),
    ("List[str]", "list[str]"),
    ("typing.Dict[str, int]", "dict[str, int]"),
    ("dict[str, list[int | None]]", "dict[str, list[int | None]]"),
    ("Optional[int]", "int | None"),
    ("None | int", "int | None"),
    ("Union[int, Union[str, None], int]", "int | str | None"),
    ("Optional[Optional[int]]", "int | None"),
    ("Union[int]", "int"),
    ("Literal['a', \"b\"]", "Literal['a', 'b']"),
    ("Literal[1, -2, True, None]", "Literal[1, -2, True, None]"),
    ("Literal['a', 'a', 1, True, 1]", "Literal['a', 1, True]"),
    ("tuple[int, ...]", "tuple[int, ...]"),
    ("Tuple[int, str, float]", "tuple[int, str, float]"),
    ("tuple", "tuple"),
    ("set[int]", "set[int]"),
    ("NoneType | str", "str | None"),
    ("datetime.datetime", "datetime"),
    ("dspy.Image", "dspy.Image"),
    ("typing.Any", "Any"),
])
def test_type_forms(text: str, canonical: str) -> None:
    spec = parse_type(text)
    assert str(spec) == canonical
    assert parse_type(canonical) == spec
    assert types_of(f"x: {text} -> y") == [canonical, "str"]


def test_type_equality_is_normalized() -> None:
    assert parse_type("Optional[int]") == parse_type("int | None") == parse_type("None | int")
    assert parse_type("Literal[1]") != parse_type("Literal[True]")
    assert hash(parse_type("List[int]")) == hash(parse_type("list[int]"))
    assert TypeSpec("list", [TypeSpec("int")]) == parse_type("list[int]")


def test_canonical_text_keeps_typedness_of_inputs_only() -> None:
    assert str(parse_signature("x: str -> y: str")) == "x: str -> y"
    assert parse_signature("x: str -> y") != parse_signature("x -> y")  # DSPy tells them apart
    assert parse_signature("x -> y: str") == parse_signature("x -> y")


def test_instructions_are_kept_apart_from_the_text() -> None:
    sig = signature("q -> a", instructions="Be brief.")
    assert sig.instructions == "Be brief."
    assert str(sig) == "q -> a"
    assert signature("q -> a").instructions is None
    assert signature("q -> a") != sig


def test_signature_is_cached_by_text_and_instructions() -> None:
    assert signature("cq -> ca") is signature("cq -> ca")
    assert signature("cq -> ca", "x") is signature("cq -> ca", "x")
    assert signature("cq -> ca", "x") is not signature("cq -> ca", "y")
    sig = signature("cq -> ca")
    assert signature(sig) is sig
    assert signature(sig, "new").instructions == "new"


# -- errors: (text, column of the caret, words the message must contain) -------------------------
ERRORS = [
    ("question answer", 9, "expected ',' or '->' after field 'question'"),
    ("question", 8, "missing '->'"),
    ("a -> b -> c", 7, "more than one '->'"),
    ("a -> -> c", 5, "more than one '->'"),
    ("x, x -> y", 3, "duplicate input field 'x' (first at column 1)"),
    ("x -> y, y", 8, "duplicate output field 'y'"),
    ("x -> x", 5, "'x' is both an input and an output"),
    ("x: Foo -> y", 3, "unknown type 'Foo' (known: str, int"),
    ("x: list[nosuchmodule.Thing] -> y", 8, "unknown type 'nosuchmodule.Thing'"),
    ("x: datetime.nosuch -> y", 3, "'datetime' has no attribute 'nosuch'"),
    ("x: json -> y", 3, "'json' is a module, not a type"),
    ("x: (int -> y", 8, "expected ')' to close the '('"),
    ("2x -> y", 0, "must start with a letter"),
    ("x -> 3", 5, "must start with a letter"),
    ("_x -> y", 0, "cannot start with an underscore"),
    ("x -> a.b", 5, "not a valid field name"),
    ("x-y -> z", 1, "unexpected character '-'"),
    ("x - > y", 2, "write the arrow as '->'"),
    ("x! -> y", 1, "unexpected character '!'"),
    ("class -> y", 0, "Python keyword"),
    ("x -> instructions", 5, "reserved by DSPy"),
    ("-> y", 0, "no input fields"),
    ("x ->", 4, "no output fields"),
    ("x ->   ", 7, "no output fields"),
    ("x: list[str -> y", 7, "unclosed '['"),
    ("x: dict[str, list[int] -> y", 7, "unclosed '['"),
    ("x: list[str]] -> y", 12, "unmatched ']'"),
    ("x 'abc -> y", 2, "unterminated string"),
    ('x -> y "abc', 7, "unterminated string"),
    ("x: Literal['a] -> y", 11, "unterminated string"),
    ("a, -> b", 1, "trailing comma before '->'"),
    ("a -> b,", 6, "trailing comma at the end"),
    ("a -> b ,  ", 7, "trailing comma at the end"),
    ("x: list[int,] -> y", 11, "trailing comma inside list"),
    ("x: Literal[] -> y", 11, "Literal needs at least one value"),
    ("x: Literal -> y", 11, "Literal needs arguments in brackets"),
    ("x: Literal[a] -> y", 11, "did you mean Literal['a']"),
    ("x: Literal[1.5] -> y", 11, "Literal values must be"),
    ("x: list[] -> y", 8, "expected a type inside list"),
    ("x: dict[str] -> y", 3, "dict takes 2 type arguments"),
    ("x: list[int, str] -> y", 3, "list takes 1 type argument"),
    ("x: Optional[int, str] -> y", 3, "Optional takes 1 type argument"),
    ("x: int[str] -> y", 6, "int takes no type arguments"),
    ("x: tuple[..., int] -> y", 9, "only allowed as the second argument of tuple"),
    ("x: tuple[int, ..., int] -> y", 17, "'...' must be the last argument"),
    ("x: list[int, ...] -> y", 13, "only allowed as the second argument of tuple"),
    ("x: None -> y", 3, "cannot have type None"),
    ("x: -> y", 3, "expected a type"),
    ("x: 'desc' -> y", 3, "got a quoted string"),
    ("x 'a' 'b' -> y", 6, "already has a description"),
    ("x 'a': int -> y", 5, "goes before its description"),
    ("x: int = 3 -> y", 7, "do not take default values"),
    ("x: int | -> y", 9, "expected a type"),
    ("x: List[" + "list[" * 20 + "int" + "]" * 21 + " -> y", 3 + 5 * 17, "nested too deeply"),
    ("   ", 0, "empty signature"),
]


@pytest.mark.parametrize(("text", "column", "words"), ERRORS)
def test_error_caret(text: str, column: int, words: str) -> None:
    with pytest.raises(SignatureError) as info:
        parse_signature(text)
    err = info.value
    assert words in err.reason
    assert err.column == column, str(err)
    assert err.text == text
    shown = str(err).splitlines()
    assert shown[-1].index("^") - 2 == column  # the caret line is indented by two spaces


def test_errors_are_value_errors_and_pickle() -> None:
    import pickle

    with pytest.raises(ValueError) as info:
        signature("x: Foo -> y")
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, SignatureError) and again.column == 3


def test_non_str_text_is_a_signature_error() -> None:
    with pytest.raises(SignatureError, match="must be a str"):
        parse_signature(42)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="must be a str"):
        signature(["x -> y"])  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="Instructions"):
        parse_signature("x -> y", instructions=3)  # type: ignore[arg-type]


def test_parse_type_rejects_trailing_text() -> None:
    with pytest.raises(SignatureError) as info:
        parse_type("int str")
    assert info.value.column == 4
