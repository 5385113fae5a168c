"""The server's own arithmetic and literal parsers agree with Python's (checked with ``ast``
here, in one thread, where it is safe)."""

from __future__ import annotations

import ast
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspex_lab.lm_server.literals import MAX_DEPTH, arithmetic, literal
from dspex_lab.lm_server.solvers import evaluate

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_FAILURES = (ValueError, SyntaxError, ZeroDivisionError, OverflowError, RecursionError)


def python_arithmetic(text: str) -> int | float:
    def value(node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError("not arithmetic")

    return value(ast.parse(text.strip(), mode="eval").body)


def outcome(function, text):
    try:
        return "ok", function(text)
    except _FAILURES:
        return ("error",)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="0123456789.()+-*/ %", max_size=24))
def test_arithmetic_matches_python_on_any_text(text):
    ours, python = outcome(arithmetic, text), outcome(python_arithmetic, text)
    assert ours[0] == python[0], (text, ours, python)
    if ours[0] == "ok":
        assert ours[1] == python[1] and type(ours[1]) is type(python[1]), (text, ours, python)


@pytest.mark.parametrize("text, value", [
    ("2 + 3 * 4", 14), ("-2 * 3", -6), ("2 - -3", 5), ("7 // 2 % 3", 0), ("1 / 4", 0.25),
    ("(2 + 3) * (4 - 1)", 15), ("2.5 * 2", 5.0), ("- (1 + 2)", -3),
])
def test_arithmetic_examples(text, value):
    assert arithmetic(text) == value


@pytest.mark.parametrize("text", ["", "2 +", "(2", "2 3", "007", "2 ** 3", "1.2.3",
                                  "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)])
def test_arithmetic_refuses_what_is_not_arithmetic(text):
    with pytest.raises(ValueError):
        arithmetic(text)
    assert evaluate(text) is None


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
                   | st.sets(st.integers(), max_size=4)),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_literal_reads_back_what_repr_writes(value):
    assert literal(repr(value)) == value == ast.literal_eval(repr(value))


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="0123456789.()[]{},:'\"\\ -+_eExjTrueFalsNonbr", max_size=20))
def test_literal_accepts_only_what_python_accepts_and_agrees(text):
    ours = outcome(literal, text)
    if ours[0] == "ok":
        python = ast.literal_eval(text)
        assert ours[1] == python and repr(ours[1]) == repr(python), (text, ours)


def test_literal_reads_dspy_tool_arguments_and_literal_choices():
    args = ("{'query': {'type': 'string', 'description': \"it's \\n ok\"}, "
            "'k': {'type': 'integer', 'default': 3}, 'flag': {'default': None}}")
    assert literal(args) == ast.literal_eval(args)
    assert literal("['positive', 'negative', 'neutral']") == ["positive", "negative", "neutral"]
    for bad in ("os.system('x')", "{'a': 1", "[1, 2,, 3]", "b'raw'", "1j", "'''x'''"):
        with pytest.raises(ValueError):
            literal(bad)
