"""Output types as DSPy writes them into prompts, parsed into a small tree.

DSPy names a field's type in the system message (``answer (str)``, ``tags (list[str])``,
``label (Literal['pos', 'neg'])``, ``maybe (Union[str, NoneType])``) and, for anything that is
not a plain scalar, adds a JSON schema in a ``# note:`` comment. Both forms parse into a
``TypeSpec`` so that the answer generator can produce a well-formed value of that type.

    >>> parse_annotation("dict[str, list[int]]").args[1]
    TypeSpec(kind='list', args=(TypeSpec(kind='int'),))
    >>> parse_annotation("Literal['pos', 'neg']").choices
    ('pos', 'neg')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dspex_lab.lm_server.literals import literal

__all__ = ["TypeSpec", "from_json_schema", "parse_annotation", "parse_annotation_at"]

_NAMES = {
    "str": "str", "int": "int", "float": "float", "bool": "bool", "NoneType": "none",
    "None": "none", "Any": "any", "object": "any", "list": "list", "List": "list",
    "Sequence": "list", "set": "set", "frozenset": "set", "Set": "set", "tuple": "tuple",
    "Tuple": "tuple", "dict": "dict", "Dict": "dict", "Mapping": "dict", "Literal": "literal",
    "Union": "union", "Optional": "union",
}
_IDENT = re.compile(r"[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class TypeSpec:
    """One node of a type: ``kind`` is str, int, float, bool, none, any, list, set, tuple,
    dict, literal, union, object or named (a class DSPy only names, e.g. a pydantic model)."""

    kind: str
    args: tuple[TypeSpec, ...] = ()
    choices: tuple[Any, ...] = ()
    fields: tuple[tuple[str, TypeSpec], ...] = ()
    name: str = ""

    def __repr__(self) -> str:
        parts = [f"kind={self.kind!r}"]
        for attr in ("args", "choices", "fields", "name"):
            if getattr(self, attr):
                parts.append(f"{attr}={getattr(self, attr)!r}")
        return f"TypeSpec({', '.join(parts)})"

    @property
    def known(self) -> bool:
        """False when this type, or one inside it, is only a class name."""
        if self.kind == "named":
            return False
        return all(a.known for a in self.args) and all(t.known for _, t in self.fields)

    def without_none(self) -> TypeSpec:
        """The first non-None member of a union (``Optional[X]`` -> ``X``)."""
        if self.kind != "union":
            return self
        members = [a for a in self.args if a.kind != "none"]
        return members[0].without_none() if members else TypeSpec("none")


STR = TypeSpec("str")


def parse_annotation(text: str) -> TypeSpec:
    """Parse a type name as DSPy's ``get_annotation_name`` writes it.

    >>> parse_annotation("Union[str, NoneType]").without_none().kind
    'str'
    """
    spec, _ = parse_annotation_at(text.strip(), 0)
    return spec


def parse_annotation_at(text: str, pos: int) -> tuple[TypeSpec, int]:
    """Parse one type name starting at ``pos``; returns it and the position after it."""
    pos = _skip_spaces(text, pos)
    if text.startswith("...", pos):
        return TypeSpec("ellipsis"), pos + 3
    match = _IDENT.match(text, pos)
    if not match:
        return STR, pos
    ident = match.group(0)
    pos = match.end()
    base = ident.rsplit(".", 1)[-1]
    kind = _NAMES.get(base, "named")
    if pos >= len(text) or text[pos] != "[":
        return TypeSpec(kind, name=base if kind == "named" else ""), pos
    if kind == "literal":
        end = _matching_bracket(text, pos)
        return TypeSpec("literal", choices=_literal_values(text[pos + 1:end])), end + 1
    args: list[TypeSpec] = []
    pos += 1
    while pos < len(text):
        arg, pos = parse_annotation_at(text, pos)
        args.append(arg)
        pos = _skip_spaces(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        break
    if pos < len(text) and text[pos] == "]":
        pos += 1
    if base == "Optional":
        args.append(TypeSpec("none"))
    return TypeSpec(kind, args=tuple(args), name=base if kind == "named" else ""), pos


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return pos


def _matching_bracket(text: str, start: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``start``, skipping quoted strings."""
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text) - 1


def _literal_values(inner: str) -> tuple[Any, ...]:
    try:
        values = literal(f"[{inner}]")
    except ValueError:
        values = [v.strip().strip("'\"") for v in inner.split(",")]
    return tuple(values)


def from_json_schema(schema: Any, defs: dict[str, Any] | None = None, _depth: int = 0) -> TypeSpec:
    """Turn a JSON schema (as pydantic writes it) into a ``TypeSpec``.

    >>> from_json_schema({"type": "array", "items": {"type": "integer"}})
    TypeSpec(kind='list', args=(TypeSpec(kind='int'),))
    """
    if not isinstance(schema, dict) or _depth > 20:
        return TypeSpec("any")
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return from_json_schema(target, defs, _depth + 1)
    if "const" in schema:
        return TypeSpec("literal", choices=(schema["const"],))
    if "enum" in schema:
        return TypeSpec("literal", choices=tuple(schema["enum"]))
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            members = tuple(from_json_schema(s, defs, _depth + 1) for s in schema[key])
            return members[0] if key == "allOf" or len(members) == 1 else TypeSpec("union", members)
    kind = schema.get("type")
    if isinstance(kind, list):
        members = tuple(from_json_schema({**schema, "type": k}, defs, _depth + 1) for k in kind)
        return TypeSpec("union", members)
    return _from_typed_schema(kind, schema, defs, _depth)


def _from_typed_schema(kind: Any, schema: dict[str, Any], defs: dict[str, Any],
                       depth: int) -> TypeSpec:
    simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
              "null": "none"}
    if kind in simple:
        return TypeSpec(simple[kind])
    if kind == "array":
        if "prefixItems" in schema:
            items = tuple(from_json_schema(s, defs, depth + 1) for s in schema["prefixItems"])
            return TypeSpec("tuple", items)
        item = from_json_schema(schema.get("items", {}), defs, depth + 1)
        return TypeSpec("set" if schema.get("uniqueItems") else "list", (item,))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if props:
            fields = tuple((k, from_json_schema(v, defs, depth + 1)) for k, v in props.items())
            return TypeSpec("object", fields=fields, name=str(schema.get("title", "")))
        extra = schema.get("additionalProperties", True)
        value = from_json_schema(extra, defs, depth + 1) if isinstance(extra, dict) else TypeSpec(
            "any")
        return TypeSpec("dict", (STR, value))
    return TypeSpec("any")
