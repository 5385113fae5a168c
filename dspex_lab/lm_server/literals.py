"""Small Python-syntax texts parsed without ``ast``, so that server threads never race.

CPython 3.11's ``ast.parse`` (and so ``ast.literal_eval``) can raise ``SystemError: AST
constructor recursion depth mismatch`` when several threads call it at once (PITFALLS.md), and
the embedded server answers from many threads, in the kernel's own process too, where a lock
of ours would not cover anybody else's calls. These two recursive-descent parsers cover what
the server reads: arithmetic in questions, and the Python literals DSPy writes into prompts
(tool arguments, ``Literal[...]`` choices).

    >>> arithmetic("2 + 3 * (4 - 1)")
    11
    >>> literal("{'query': {'type': 'string'}, 'k': [1, -2.5, None, True]}")
    {'query': {'type': 'string'}, 'k': [1, -2.5, None, True]}

Both raise ``ValueError`` for anything else; ``arithmetic`` lets ``ZeroDivisionError`` and
``OverflowError`` through, as Python's own evaluation would.
"""

from __future__ import annotations

import operator
import re
from typing import Any

__all__ = ["MAX_DEPTH", "arithmetic", "literal"]

MAX_DEPTH = 100
"""Nesting (parentheses, brackets) deeper than this is refused with ``ValueError``."""

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|(//|[-+*/%()]))")
_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod}
_DECIMAL = re.compile(r"0+|[1-9]\d*")   # Python refuses leading zeros in integer literals


def arithmetic(text: str) -> int | float:
    """Evaluate ``+ - * / // %``, unary signs and parentheses over int and float literals,
    with Python's precedence and semantics."""
    tokens = _arith_tokens(text)
    parser = _Arithmetic(tokens)
    value = parser.expression(0)
    if parser.pos != len(tokens):
        raise ValueError(f"unexpected {tokens[parser.pos]!r}")
    return value


def _arith_tokens(text: str) -> list[Any]:
    tokens: list[Any] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"not arithmetic at {text[pos:pos + 10]!r}")
        number, op = m.groups()
        if number is not None:
            if tokens and isinstance(tokens[-1], int | float):
                raise ValueError("two numbers in a row")
            if "." in number:
                tokens.append(float(number))
            elif _DECIMAL.fullmatch(number):
                tokens.append(int(number))
            else:
                raise ValueError(f"leading zeros in {number!r}")
        else:
            tokens.append(op)
        pos = m.end()
    return tokens


class _Arithmetic:
    """expression := term (('+'|'-') term)*; term := unary (('*'|'/'|'//'|'%') unary)*;
    unary := ('+'|'-') unary | atom; atom := number | '(' expression ')'."""

    def __init__(self, tokens: list[Any]) -> None:
        self.tokens, self.pos = tokens, 0

    def _peek(self) -> Any:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expression(self, depth: int) -> int | float:
        value = self.term(depth)
        while self._peek() in ("+", "-"):
            op = self.tokens[self.pos]
            self.pos += 1
            value = _BINARY[op](value, self.term(depth))
        return value

    def term(self, depth: int) -> int | float:
        value = self.unary(depth)
        while self._peek() in ("*", "/", "//", "%"):
            op = self.tokens[self.pos]
            self.pos += 1
            value = _BINARY[op](value, self.unary(depth))
        return value

    def unary(self, depth: int) -> int | float:
        signs = 1
        while self._peek() in ("+", "-"):
            signs = -signs if self.tokens[self.pos] == "-" else signs
            self.pos += 1
        value = self.atom(depth)
        return -value if signs < 0 else value

    def atom(self, depth: int) -> int | float:
        token = self._peek()
        self.pos += 1
        if isinstance(token, int | float):
            return token
        if token != "(":
            raise ValueError(f"expected a number, got {token!r}")
        if depth >= MAX_DEPTH:
            raise ValueError("nested too deeply")
        value = self.expression(depth + 1)
        if self._peek() != ")":
            raise ValueError("unbalanced parentheses")
        self.pos += 1
        return value


# ----------------------------------------------------------------------------- literals

_LITERAL_TOKEN = re.compile(r"""\s*(?:
    (?P<str>[rRbBuU]{0,2}(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"))
  | (?P<num>[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?[jJ]?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<punct>[\[\](){}:,]))""", re.X | re.S)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|.)", re.S)
_SIMPLE_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r",
                   "a": "\a", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "\n": ""}
_NAMES = {"True": True, "False": False, "None": None}
_CLOSE = {"[": "]", "(": ")", "{": "}"}


def literal(text: str) -> Any:
    """The value of a Python literal: str, int, float, bool, None, and lists, tuples, dicts
    and sets of them (what ``repr`` writes for such values)."""
    tokens = _literal_tokens(text)
    parser = _Literal(tokens)
    value = parser.value(0)
    if parser.pos != len(tokens):
        raise ValueError(f"unexpected {tokens[parser.pos][1]!r}")
    return value


def _literal_tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _LITERAL_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"not a literal at {text[pos:pos + 10]!r}")
        kind = m.lastgroup or ""
        token = m.group(kind)
        if kind == "str" and token[-2:] in ("''", '""') and text[m.end():m.end() + 1] == token[-1]:
            raise ValueError("triple-quoted strings are not supported")
        tokens.append((kind, token))
        pos = m.end()
    return tokens


def _string(token: str) -> str:
    prefix = token[:len(token) - len(token.lstrip("rRbBuU"))].lower()
    if "b" in prefix:
        raise ValueError("bytes literals are not supported")
    body = token[len(prefix) + 1:-1]
    return body if "r" in prefix else _ESCAPE.sub(_unescape, body)


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if code[0] in "xuU" and len(code) > 1:
        return chr(int(code[1:], 16))
    if code[0] in "01234567":
        return chr(int(code, 8))
    return _SIMPLE_ESCAPES.get(code, "\\" + code)


def _number(token: str) -> int | float:
    if token[-1] in "jJ":
        raise ValueError("complex literals are not supported")
    digits = token.lstrip("+-")
    if "_" in digits and (digits.startswith("_") or "__" in digits or digits.endswith("_")):
        raise ValueError(f"bad number {token!r}")
    if any(c in digits for c in ".eE"):
        return float(token)
    if not _DECIMAL.fullmatch(digits.replace("_", "")):
        raise ValueError(f"leading zeros in {token!r}")
    return int(token)


class _Literal:
    """value := str+ | number | name | '[' items ']' | '(' items ')' | '{' entries '}'."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def _take(self, text: str) -> bool:
        if self._peek() == ("punct", text):
            self.pos += 1
            return True
        return False

    def value(self, depth: int) -> Any:
        kind, text = self._peek()
        self.pos += 1
        if kind == "str":
            parts = [_string(text)]
            while self._peek()[0] == "str":     # implicit concatenation: 'a' 'b'
                parts.append(_string(self._peek()[1]))
                self.pos += 1
            return "".join(parts)
        if kind == "num":
            return _number(text)
        if kind == "name" and text in _NAMES:
            return _NAMES[text]
        if kind == "name" and text == "set" and self._take("(") and self._take(")"):
            return set()                        # how repr writes an empty set
        if kind == "punct" and text in _CLOSE:
            if depth >= MAX_DEPTH:
                raise ValueError("nested too deeply")
            return self._container(text, depth + 1)
        raise ValueError(f"unexpected {text or 'end of text'!r}")

    def _container(self, opening: str, depth: int) -> Any:
        close = _CLOSE[opening]
        items: list[Any] = []
        pairs: list[tuple[Any, Any]] = []
        is_dict, trailing_comma = None, False
        while not self._take(close):
            key = self.value(depth)
            if opening == "{" and is_dict is not False and self._take(":"):
                is_dict = True
                pairs.append((key, self.value(depth)))
            elif is_dict:
                raise ValueError("a dict entry needs a ':'")
            else:
                is_dict = False
                items.append(key)
            trailing_comma = self._take(",")
            if not trailing_comma and self._peek() != ("punct", close):
                raise ValueError(f"expected ',' or {close!r}")
        if opening == "[":
            return items
        if opening == "(":
            if len(items) == 1 and not trailing_comma:
                return items[0]
            return tuple(items)
        return dict(pairs) if is_dict or not items else set(items)
