"""The signature parser: text -> ``Signature``. Pure, hand-written, and fast (no dspy, no ast).

Grammar (whitespace and newlines are allowed between any two tokens)::

    signature := fields '->' fields
    fields    := field (',' field)*
    field     := NAME [':' type] [STRING]          # STRING: 'single' or "double" quoted
    type      := primary ('|' primary)*
    primary   := TYPENAME ['[' args ']'] | '(' type ')'
    args      := type (',' type)* [',' '...']      # '...' only in tuple[T, ...]
               | literal (',' literal)*            # in Literal[...]: strings, ints, True/False/None

An untyped field is a ``str`` field. A TYPENAME outside the known names (``known.py``) is a custom
type, resolved like ``dspy.Signature`` resolves it (``resolve.py``: the caller's frames, the
notebook, ``typing``); the TypeSpec holds the object. Every problem raises ``SignatureError`` whose
``column`` points at the offending character; no input makes the parser raise anything else.

>>> str(parse_signature("q, ctx: List[str]\\n -> a: Optional[int] 'a number'"))
"q, ctx: list[str] -> a: int | None 'a number'"
"""

from __future__ import annotations

import re
import types
from typing import Any

from dspex_lab.errors import SignatureError
from dspex_lab.signatures.known import ALIASES, ARITY, KNOWN_NAMES, TYPING_SPELLINGS, is_scalar
from dspex_lab.signatures.resolve import NOT_FOUND, lookup
from dspex_lab.signatures.spec import (
    STR,
    Field,
    Signature,
    TypeSpec,
    _make,
    literal_of,
    name_problem,
    union_of,
    with_form,
)

__all__ = ["parse_signature", "parse_type", "parse_with_names"]

MAX_DEPTH = 16

_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<arrow>->)
    | (?P<name>[^\W\d]\w*(?:\.[^\W\d]\w*)*)
    | (?P<num>-?\d[\w.]*)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<ell>\.\.\.)
    | (?P<punct>[,:\[\]|()])
    )""",
    re.VERBOSE | re.DOTALL,
)
_SPACE_RE = re.compile(r"\s*")
_INT_RE = re.compile(r"-?\d+")
_ESCAPE_RE = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{1,3})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a",
                   "b": "\b", "f": "\f", "v": "\v", "\n": ""}
_PLAIN = {name: (STR if name == "str" else _make(name))
          for name in set(ALIASES.values()) if is_scalar(name) or name in ARITY}
#: Each plain spelling -> its TypeSpec. A bare ``List`` is ``list``: DSPy rejects bare aliases.
_BARE = {val: _PLAIN[canon] for val, canon in ALIASES.items() if canon in _PLAIN}
_KNOWN_TEXT = ", ".join(KNOWN_NAMES)

Token = tuple[str, str, int]  # (kind, text, column)


def parse_signature(text: str, instructions: str | None = None) -> Signature:
    """Parse signature text into a ``Signature`` (uncached; ``signature()`` caches).

    >>> parse_signature("question -> answer").output_names
    ('answer',)
    """
    return parse_with_names(text, instructions)[0]


def parse_with_names(text: str, instructions: str | None = None) -> tuple[Signature, dict]:
    """``(signature, names)``: ``names`` maps each custom name whose meaning depends on the
    caller (frames, notebook) to the object it resolved to, for ``signature()``'s cache."""
    if type(text) is not str:
        raise SignatureError(f"Signature text must be a str, got {type(text).__name__}.")
    if instructions is not None and type(instructions) is not str:
        raise SignatureError(f"Instructions must be a str or None, got {instructions!r}.")
    parser = _Parser(text)
    return parser.signature(instructions), parser.resolved


def parse_type(text: str) -> TypeSpec:
    """Parse a type alone: ``parse_type("dict[str, int]")``."""
    if type(text) is not str:
        raise SignatureError(f"Type text must be a str, got {type(text).__name__}.")
    p = _Parser(text)
    spec = p.type(0)
    if p.tok[0] != "end":
        p.fail(f"unexpected {_describe(p.tok)} after the type", p.tok[2], "the end")
    return spec


def _tokenize(text: str) -> list[Token]:
    toks: list[Token] = []
    append, match, pos = toks.append, _TOKEN_RE.match, 0
    while True:
        m = match(text, pos)
        if m is None:
            pos = _SPACE_RE.match(text, pos).end()
            if pos >= len(text):
                append(("end", "", len(text)))
                return toks
            _bad_char(text, pos)
        kind = m.lastgroup
        append((kind, m.group(kind), m.start(kind)))
        pos = m.end()


def _bad_char(text: str, pos: int) -> None:
    ch = text[pos]
    rest = text[pos + 1:].lstrip()
    if ch in "'\"":
        msg, expected = f"unterminated string: the {ch} opened here is never closed", ch
    elif ch == "-" and rest.startswith(">"):
        msg, expected = "write the arrow as '->' with nothing between '-' and '>'", "'->'"
    elif ch == "=":
        msg, expected = "signatures do not take default values ('=')", "',' or '->'"
    else:
        msg, expected = f"unexpected character {ch!r}", None
    raise SignatureError(msg, text, pos, expected)


def _describe(tok: Token) -> str:
    kind, val, _ = tok
    if kind == "end":
        return "the end of the text"
    if kind == "str":
        return "a quoted string"
    return repr(val)


def _unquote(text: str, col: int, src: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body

    def sub(m: re.Match) -> str:
        hx = m.group(1) or m.group(2) or m.group(3)
        if hx is not None or m.group(4) is not None:
            code = int(hx, 16) if hx is not None else int(m.group(4), 8)
            if code > 0x10FFFF:
                raise SignatureError(f"escape {m.group(0)!r} is not a valid character", src, col)
            return chr(code)
        ch = m.group(5)
        return _SIMPLE_ESCAPES.get(ch, "\\" + ch)

    return _ESCAPE_RE.sub(sub, body)


class _Parser:
    """Recursive descent over the token list; ``tok`` is the current token."""

    __slots__ = ("i", "none_const", "resolved", "seen", "text", "tok", "toks")

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.tok = self.toks[0]
        self.seen: dict[str, tuple[str, int]] = {}
        self.resolved: dict[str, Any] = {}
        self.none_const = False  # was the last primary the constant None (not NoneType)?

    def fail(self, message: str, column: int, expected: str | None = None) -> None:
        raise SignatureError(message, self.text, column, expected)

    def next(self) -> None:
        self.i += 1
        self.tok = self.toks[self.i]

    # -- signature level -------------------------------------------------------------------------
    def signature(self, instructions: str | None) -> Signature:
        if self.tok[0] == "end":
            self.fail("empty signature; write it as 'inputs -> outputs', e.g. 'question -> answer'",
                      0, "a field name")
        inputs = self.fields("input")
        if self.tok[0] == "end":
            self.fail("missing '->' between the inputs and the outputs (e.g. 'question -> answer')",
                      len(self.text), "'->'")
        arrow = self.tok[2]
        self.next()
        outputs = self.fields("output", arrow)
        return Signature(tuple(inputs), tuple(outputs), instructions)

    def fields(self, kind: str, arrow: int = -1) -> list[Field]:
        out: list[Field] = []
        comma = -1
        while True:
            tk, _, col = self.tok
            if tk == "arrow" or tk == "end":
                self._empty_side(kind, tk, col, comma, arrow, bool(out))
            out.append(self.field(kind))
            tk, _, col = self.tok
            if tk == "punct" and self.tok[1] == ",":
                comma = col
                self.next()
                continue
            if tk == "end" or (tk == "arrow" and kind == "input"):
                return out
            self._after_field(kind, out[-1])

    def _empty_side(self, kind: str, tk: str, col: int, comma: int, arrow: int, any_: bool) -> None:
        if comma >= 0:
            where = "before '->'" if tk == "arrow" else "at the end"
            self.fail(f"trailing comma {where}; remove it or add a field after it", comma,
                      "a field name")
        if tk == "arrow" and kind == "output":
            self.fail("more than one '->'; a signature has exactly one", col, "a field name")
        if kind == "input":
            self.fail("no input fields before '->'; a signature needs at least one input "
                      "(e.g. 'question -> answer')", col, "a field name")
        self.fail("no output fields after '->'; a signature needs at least one output "
                  "(e.g. 'question -> answer')", max(col, arrow + 2), "a field name")

    def _after_field(self, kind: str, last: Field) -> None:
        tk, val, col = self.tok
        if tk == "arrow":
            self.fail("more than one '->'; a signature has exactly one", col, "',' or the end")
        if tk == "str":
            self.fail(f"field {last.name!r} already has a description; give each field at most one",
                      col, "',' or '->'")
        if val == ":":
            self.fail(f"the type of {last.name!r} goes before its description "
                      f"(write {last.name}: TYPE 'description')", col, "',' or '->'")
        if val == "]":
            self.fail("unmatched ']'", col, "',' or '->'")
        nxt = "',' or '->'" if kind == "input" else "',' or the end"
        self.fail(f"expected {nxt} after field {last.name!r}, got {_describe(self.tok)}", col, nxt)

    def field(self, kind: str) -> Field:
        tk, name, col = self.tok
        if tk == "num":
            self.fail(f"field names must start with a letter, not a digit ({name!r})", col,
                      "a field name")
        if tk != "name":
            self.fail(f"expected a field name, got {_describe(self.tok)}", col, "a field name")
        problem = name_problem(name)
        if problem:
            self.fail(problem, col, "a field name")
        self._check_unique(name, kind, col)
        self.next()
        spec, typed = STR, False
        if self.tok[1] == ":" and self.tok[0] == "punct":
            self.next()
            spec, typed = self.field_type(name), True
        desc = None
        if self.tok[0] == "str":
            desc = _unquote(self.tok[1], self.tok[2], self.text)
            self.next()
        return Field(name, spec, desc, kind, typed)

    def _check_unique(self, name: str, kind: str, col: int) -> None:
        first = self.seen.get(name)
        if first is None:
            self.seen[name] = (kind, col)
        elif first[0] == kind:
            self.fail(f"duplicate {kind} field {name!r} (first at column {first[1] + 1}); "
                      "field names must be unique", col, "a new field name")
        else:
            self.fail(f"{name!r} is both an input and an output; rename one of them", col,
                      "a new field name")

    def field_type(self, name: str) -> TypeSpec:
        tk, _, col = self.tok
        if tk == "str":
            self.fail(f"expected a type after '{name}:', got a quoted string; write "
                      f"{name}: str 'description' or drop the ':'", col, "a type")
        spec = self.type(0)
        if spec.name == "None":
            self.fail(f"field {name!r} cannot have type None; use 'T | None' for optional values",
                      col, "a type")
        return spec

    # -- types -----------------------------------------------------------------------------------
    def type(self, depth: int) -> TypeSpec:
        spec = self.primary(depth)
        if self.tok[1] != "|" or self.tok[0] != "punct":
            return spec
        members, consts = [spec], [self.none_const]
        while self.tok[1] == "|" and self.tok[0] == "punct":
            self.next()
            members.append(self.primary(depth))
            consts.append(self.none_const)
        self.none_const = False
        union = union_of(members)
        # to_python() folds `a | b | c` pair by pair as DSPy does (spec._written_union)
        if union.name != "Union":  # `int | int`: DSPy's Union collapses the same way
            return union
        return with_form(union, ("or", tuple(members), tuple(consts)))

    def primary(self, depth: int) -> TypeSpec:
        tk, val, col = self.tok
        if depth > MAX_DEPTH:
            self.fail(f"type nested too deeply (more than {MAX_DEPTH} levels)", col)
        if tk == "punct" and val == "(":
            self.next()
            spec = self.type(depth + 1)
            if self.tok[1] != ")" or self.tok[0] != "punct":
                self.fail(f"expected ')' to close the '(' at column {col + 1}, got "
                          f"{_describe(self.tok)}", self.tok[2], "')'")
            self.next()
            return spec
        self.none_const = False
        if tk == "ell":
            self.fail("'...' is only allowed as the second argument of tuple, as in "
                      "tuple[int, ...]", col, "a type")
        if tk != "name":
            self.fail(f"expected a type, got {_describe(self.tok)}", col, "a type")
        canon = ALIASES.get(val)
        if canon is None or (canon[:5] == "dspy." and self.toks[self.i + 1][1] == "["):
            return self._custom(val, col, depth)  # (dspy.Code["python"]: DSPy subscripts it)
        self.next()
        if self.tok[1] != "[" or self.tok[0] != "punct":
            if canon in ("Optional", "Union", "Literal"):
                self.fail(f"{val} needs arguments in brackets, e.g. {val}[...]", self.tok[2], "'['")
            self.none_const = val == "None"
            return _BARE[val]
        if is_scalar(canon):
            self.fail(f"{val} takes no type arguments", self.tok[2], "',' or '->'")
        opening = self.tok[2]
        self.next()
        if canon == "Literal":
            spec = literal_of(self._literal_values(opening))
        else:
            spec = self._generic(canon, val, col, opening, depth)
        self.next()  # the closing ']'
        return spec

    def _generic(self, canon: str, val: str, col: int, opening: int, depth: int) -> TypeSpec:
        args: list = []
        consts: list[bool] = []
        while True:
            if self.tok[0] == "ell" and canon == "tuple" and len(args) == 1:
                args.append(...)
                self.next()
                if self.tok[1] == "," and self.tok[0] == "punct":
                    self.fail("'...' must be the last argument, as in tuple[int, ...]",
                              self.tok[2], "']'")
            else:
                if self.tok[1] == "]" and self.tok[0] == "punct":
                    self.fail(f"expected a type inside {val}[...]", self.tok[2], "a type")
                args.append(self.type(depth + 1))
                consts.append(self.none_const)
            if not self._more_args(val, opening):
                break
        want = {"Optional": 1, "Union": -1}.get(canon, ARITY.get(canon))
        if want > 0 and len(args) != want:
            plural = "argument" if want == 1 else "arguments (key and value)"
            self.fail(f"{val} takes {want} type {plural}, got {len(args)}", col, "']'")
        if canon in ("Union", "Optional"):
            union = union_of(args if canon == "Union" else (args[0], _PLAIN["None"]))
            if union.name != "Union":
                return union
            return with_form(union, (canon.lower(), tuple(args), tuple(consts)))
        form = ("typing", TYPING_SPELLINGS[val]) if val in TYPING_SPELLINGS else None
        return _make(canon, tuple(args), form)

    # -- custom types ----------------------------------------------------------------------------
    def _custom(self, val: str, col: int, depth: int) -> TypeSpec:
        try:
            obj, dynamic = lookup(val)
        except Exception as exc:  # a missing attribute, or a module whose __getattr__ raised
            self.fail(f"unknown type {val!r}: {exc}", col, "a known type")
        if obj is NOT_FOUND:
            self.fail(f"unknown type {val!r} (known: {_KNOWN_TEXT}); a custom type must be "
                      "defined or imported where the signature is written", col, "a known type")
        if dynamic:
            self.resolved[val] = obj
        self.next()
        text = val
        if self.tok[1] == "[" and self.tok[0] == "punct":
            opening = self.tok[2]
            self.next()
            args, texts = self._object_args(val, opening, depth)
            try:
                obj = obj[tuple(args)]  # as DSPy subscripts it
            except Exception as exc:
                self.fail(f"{val}[...] is not a valid type: {exc}", col, "a type")
            text = f"{val}[{', '.join(texts)}]"
            self.next()  # the closing ']'
        if isinstance(obj, types.ModuleType):
            self.fail(f"{val!r} is a module, not a type; name a class in it ({val}.SomeClass)",
                      col, "a type")
        from dspex_lab.signatures.to_dspy import typespec_of

        try:
            return typespec_of(obj, text, custom=True)
        except SignatureError:
            self.fail(f"{text!r} is {type(obj).__name__} {obj!r:.60}, not a type", col, "a type")
        raise AssertionError  # unreachable: fail() raises

    def _object_args(self, val: str, opening: int, depth: int) -> tuple[list, list[str]]:
        args: list = []
        texts: list[str] = []
        while True:
            tk, text, col = self.tok
            if tk == "punct" and text == "]":
                self.fail(f"expected a type inside {val}[...]", col, "a type")
            if tk == "str" or (tk == "num" and _INT_RE.fullmatch(text) and len(text) <= 100):
                value = _unquote(text, col, self.text) if tk == "str" else int(text)
                args.append(value)
                texts.append(repr(value))
                self.next()
            elif tk == "ell":
                args.append(...)
                texts.append("...")
                self.next()
            else:
                spec = self.type(depth + 1)
                args.append(spec.to_python())
                texts.append(str(spec))
            if not self._more_args(val, opening):
                return args, texts

    def _more_args(self, val: str, opening: int) -> bool:
        tk, text, col = self.tok
        if tk == "punct" and text == ",":
            self.next()
            if self.tok[0] == "punct" and self.tok[1] == "]":
                self.fail(f"trailing comma inside {val}[...]", col, "a type")
            return True
        if tk == "punct" and text == "]":
            return False
        if tk in ("end", "arrow") or (tk == "punct" and text in ",:"):
            self.fail(f"unclosed '[' after {val}; add the missing ']'", opening, "']'")
        self.fail(f"expected ',' or ']' in {val}[...], got {_describe(self.tok)}", col,
                  "',' or ']'")
        return False

    def _literal_values(self, opening: int) -> list:
        values: list = []
        while True:
            tk, text, col = self.tok
            if tk == "punct" and text == "]" and not values:
                self.fail("Literal needs at least one value, e.g. Literal['yes', 'no']", col,
                          "a value")
            if tk == "str":
                values.append(_unquote(text, col, self.text))
            elif tk == "num" and _INT_RE.fullmatch(text) and len(text) <= 100:
                values.append(int(text))
            elif tk == "name" and text in ("True", "False", "None"):
                values.append({"True": True, "False": False, "None": None}[text])
            else:
                hint = f"; did you mean Literal[{text!r}]?" if tk == "name" else ""
                self.fail("Literal values must be quoted strings, integers, True, False or None, "
                          f"got {_describe(self.tok)}{hint}", col, "a value")
            self.next()
            if not self._more_args("Literal", opening):
                return values
