"""validate_inputs / validate_outputs: strict coercion, and every problem listed with its field."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pytest

from dspex_lab.errors import ValidationError
from dspex_lab.signatures import signature


def problems(sig_text: str, values: dict, outputs: bool = False) -> list[tuple[str, str]]:
    sig = signature(sig_text)
    check = sig.validate_outputs if outputs else sig.validate_inputs
    with pytest.raises(ValidationError) as info:
        check(values)
    return info.value.problems


def ok(type_text: str, value: object) -> object:
    return signature(f"x: {type_text} -> y").validate_inputs({"x": value})["x"]


def bad(type_text: str, value: object) -> list[tuple[str, str]]:
    return problems(f"x: {type_text} -> y", {"x": value})


@pytest.mark.parametrize(("type_text", "value", "expected"), [
    ("int", 3, 3),
    ("int", 3.0, 3),                       # integral floats: as pydantic's lax mode
    ("int", np.int64(7), 7),
    ("float", 3, 3.0),
    ("float", 2.5, 2.5),
    ("float", np.float32(1.5), 1.5),
    ("bool", True, True),
    ("bool", np.bool_(False), False),
    ("str", "hi", "hi"),
    ("str", np.str_("hi"), "hi"),
    ("bytes", bytearray(b"ab"), b"ab"),
    ("Any", object, object),
    ("list[int]", (1, 2), [1, 2]),
    ("list[int]", np.array([1, 2]), [1, 2]),
    ("list[float]", [1, 2.5], [1.0, 2.5]),
    ("list", [1, "a"], [1, "a"]),
    ("tuple[int, str]", [1, "a"], (1, "a")),
    ("tuple[int, ...]", [1, 2, 3], (1, 2, 3)),
    ("set[int]", [1, 1, 2], {1, 2}),
    ("dict[str, int]", {"a": 1}, {"a": 1}),
    ("dict[str, float]", {"a": 1}, {"a": 1.0}),
    ("int | None", None, None),
    ("list[int] | None", [1], [1]),
    ("Optional[int]", 4, 4),
    ("float | int", 3, 3),                 # the exact type wins in a union
    ("int | float", 2.5, 2.5),
    ("str | int", 3, 3),
    ("Literal['a', 1]", "a", "a"),
    ("Literal['a', 1]", 1, 1),
    ("Literal[True]", True, True),
    ("datetime", "2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10)),
    ("date", dt.date(2024, 5, 1), dt.date(2024, 5, 1)),
    ("date", "2024-05-01", dt.date(2024, 5, 1)),
    ("dict[str, list[int | None]]", {"a": [1, None]}, {"a": [1, None]}),
])
def test_accepted_and_coerced(type_text: str, value: object, expected: object) -> None:
    result = ok(type_text, value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("type_text", "value", "path", "words"), [
    ("int", "3", "x", "expected int, got str '3'"),
    ("int", 3.5, "x", "fractional part"),
    ("int", True, "x", "expected int, got bool True"),
    ("int", float("nan"), "x", "expected int"),
    ("float", "1.5", "x", "expected float, got str"),
    ("float", False, "x", "expected float, got bool"),
    ("float", 10**400, "x", "too large"),
    ("bool", 1, "x", "expected bool, got int 1"),
    ("bool", "true", "x", "expected bool"),
    ("str", 5, "x", "expected str, got int 5"),
    ("str", b"a", "x", "expected str, got bytes"),
    ("None | int", "a", "x", "expected int | None, got str 'a'"),
    ("Literal['a', 'b']", "c", "x", "expected one of 'a', 'b', got str 'c'"),
    ("Literal[1]", True, "x", "expected one of 1, got bool True"),
    ("Literal['a']", ["a"], "x", "expected one of 'a'"),
    ("list[int]", "123", "x", "expected list, got str"),
    ("list[int]", {1: 2}, "x", "expected list, got dict"),
    ("tuple[int, str]", [1], "x", "expected tuple[int, str] of 2 items, got list [1] (1 item)"),
    ("dict[str, int]", [("a", 1)], "x", "expected dict"),
    ("set[list[int]]", [[1]], "x", "set of hashable items"),
    ("int | str", 2.5, "x", "expected int | str, got float 2.5"),
    ("datetime", "yesterday", "x", "not an ISO 8601 string"),
    ("date", dt.datetime(2024, 1, 1), "x", "expected date"),
])
def test_rejected(type_text: str, value: object, path: str, words: str) -> None:
    found = bad(type_text, value)
    assert len(found) == 1
    assert found[0][0] == path
    assert words in found[0][1]


def test_nested_paths_name_the_index_and_key() -> None:
    found = bad("dict[str, list[int]]", {"a": [1, 2, "three"], "b": ["x"], 3: [4]})
    assert found == [
        ("x['a'][2]", "expected int, got str 'three'"),
        ("x['b'][0]", "expected int, got str 'x'"),
        ("x[3]", "bad key: expected str, got int 3"),
    ]
    found = bad("list[int] | None", [1, "two"])
    assert found == [("x[1]", "expected int, got str 'two'")]


def test_every_problem_is_listed_with_its_field() -> None:
    found = problems(
        "question: str, items: list[int], n: int -> answer",
        {"question": 1, "items": [1, "a", 3, 4.5], "surprise": True},
    )
    assert [field for field, _ in found] == ["question", "items[1]", "items[3]", "n", "surprise"]
    assert "missing" in dict(found)["n"]
    assert "not a field of this signature" in dict(found)["surprise"]


def test_error_message_lists_problems() -> None:
    sig = signature("a: int, b: int -> c")
    with pytest.raises(ValidationError) as info:
        sig.validate_inputs({"a": "1", "b": "2"})
    text = str(info.value)
    assert text.startswith("2 problems with the inputs:")
    assert "  - a: expected int, got str '1'" in text
    assert pickle.loads(pickle.dumps(info.value)).problems == info.value.problems


def test_optional_fields_may_be_missing() -> None:
    sig = signature("q, hint: str | None, extra: Any -> a")
    assert sig.validate_inputs({"q": "x"}) == {"q": "x", "hint": None, "extra": None}


def test_outputs_are_validated_separately() -> None:
    sig = signature("q -> answer: int, why")
    assert sig.validate_outputs({"answer": 2.0, "why": "math"}) == {"answer": 2, "why": "math"}
    found = problems("q -> answer: int, why", {"answer": "2", "q": "x"}, outputs=True)
    assert [f for f, _ in found] == ["answer", "why", "q"]
    with pytest.raises(ValidationError) as info:
        sig.validate_outputs({"answer": "2", "why": "x"})
    assert info.value.what == "outputs"


def test_result_is_a_copy_in_field_order() -> None:
    sig = signature("a: list[int], b -> c")
    items = [1, 2]
    result = sig.validate_inputs({"b": "x", "a": items})
    assert list(result) == ["a", "b"]
    assert result["a"] == items and result["a"] is not items


def test_not_a_mapping() -> None:
    with pytest.raises(ValidationError) as info:
        signature("a -> b").validate_inputs(["a"])  # type: ignore[arg-type]
    assert info.value.problems[0][0] == "*"


def test_dspy_types_validate_through_their_model() -> None:
    import dspy

    sig = signature("picture: dspy.Image, history: dspy.History -> caption")
    image = dspy.Image("https://example.com/cat.png")
    result = sig.validate_inputs({"picture": image, "history": {"messages": []}})
    assert result["picture"] is image
    assert isinstance(result["history"], dspy.History)
    found = problems("history: dspy.History -> caption", {"history": 5})
    assert found[0][0] == "history" and "expected dspy.History" in found[0][1]
