"""JSON Schema (draft 2020-12) for a signature's inputs and outputs.

>>> from dspex_lab.signatures import signature
>>> schema = signature("q -> tags: list[str]").to_json_schema()
>>> schema["properties"]["outputs"]["properties"]["tags"]
{'type': 'array', 'items': {'type': 'string'}}
"""

from __future__ import annotations

from typing import Any

from dspex_lab.signatures.spec import Field, Signature, TypeSpec

__all__ = ["signature_schema", "type_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "None": {"type": "null"},
    "Any": {},
    "bytes": {"type": "string", "format": "binary"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}
_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", type(None): "null"}


def type_schema(spec: TypeSpec) -> dict[str, Any]:
    """The JSON schema of one type: ``type_schema(TypeSpec.parse("int | None"))``."""
    name, args = spec.name, spec.args
    if spec.custom:
        return _custom_schema(spec)
    if name in _SCALARS:
        return dict(_SCALARS[name])
    if name == "Union":
        return {"anyOf": [type_schema(a) for a in args]}
    if name == "Literal":
        kinds = {_JSON_TYPES[type(v)] for v in args}
        return {"enum": list(args), **({"type": kinds.pop()} if len(kinds) == 1 else {})}
    if name == "dict":
        values = {"additionalProperties": type_schema(args[1])} if args else {}
        return {"type": "object", **values}
    if name in ("list", "set") or (name == "tuple" and (not args or args[-1] is ...)):
        out: dict[str, Any] = {"type": "array"}
        if args:
            out["items"] = type_schema(args[0])
        if name == "set":
            out["uniqueItems"] = True
        return out
    if name == "tuple":
        return {"type": "array", "prefixItems": [type_schema(a) for a in args],
                "items": False, "minItems": len(args), "maxItems": len(args)}
    return {"title": name}  # dspy.Image and friends: any JSON value, named


def _custom_schema(spec: TypeSpec) -> dict[str, Any]:
    """pydantic's schema of a custom type when it is self-contained, else just its name."""
    try:
        import pydantic

        schema = pydantic.TypeAdapter(spec.to_python()).json_schema()
    except Exception:
        return {"title": str(spec)}
    return {"title": str(spec)} if "$defs" in schema or "$ref" in str(schema) else schema


def _side(fields: tuple[Field, ...]) -> dict[str, Any]:
    props = {}
    for f in fields:
        # an untyped input takes any value (as in DSPy); an untyped output is a str
        prop = {} if f.kind == "input" and not f.typed else type_schema(f.type)
        if f.description is not None:
            prop["description"] = f.description
        props[f.name] = prop
    return {"type": "object", "properties": props,
            "required": [f.name for f in fields if not f.type.optional],
            "additionalProperties": False}


def signature_schema(sig: Signature) -> dict[str, Any]:
    """A schema for ``{"inputs": {...}, "outputs": {...}}`` (prefer ``sig.to_json_schema()``)."""
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "title": str(sig),
        "type": "object",
        "properties": {"inputs": _side(sig.inputs), "outputs": _side(sig.outputs)},
        "required": ["inputs", "outputs"],
        "additionalProperties": False,
    }
    if sig.instructions is not None:
        schema["description"] = sig.instructions
    return schema
