"""The only place where a ``Signature`` meets dspy: ``to_dspy``, ``from_dspy``, ``typespec_of``.

``to_dspy`` builds exactly what ``dspy.Signature(text)`` builds for the same text: same field
order, annotations, ``desc`` (``"${name}"`` when there is no description), ``prefix``, the
``IS_TYPE_UNDEFINED`` marker on untyped inputs, and DSPy's default instructions when none are
given. dspy is imported lazily, on the first conversion.

>>> from dspex_lab.signatures import signature
>>> cls = signature("question -> answer: int").to_dspy()
>>> cls.output_fields["answer"].annotation
<class 'int'>
"""

from __future__ import annotations

import datetime as _dt
import sys
import types
import typing
import warnings
from typing import Any

from dspex_lab.errors import SignatureError
from dspex_lab.signatures.known import DSPY_TYPES, KNOWN_NAMES
from dspex_lab.signatures.spec import Field, Signature, TypeSpec, _make, literal_of, union_of

__all__ = ["default_instructions", "from_dspy", "to_dspy", "typespec_of"]

_IS_TYPE_UNDEFINED = "IS_TYPE_UNDEFINED"  # dspy.utils.constants.IS_TYPE_UNDEFINED
_SIMPLE = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes",
           type(None): "None", _dt.datetime: "datetime", _dt.date: "date",
           list: "list", dict: "dict", tuple: "tuple", set: "set"}
_SHADOWS = ("copy", "dict", "json", "schema", "validate", "construct", "equals", "insert",
            "append", "prepend", "delete", "register", "mro", "dump_state", "load_state")


def default_instructions(input_names: tuple[str, ...], output_names: tuple[str, ...]) -> str:
    """DSPy's instructions for a signature that has none (``Given the fields `q`, ...``)."""
    ins = ", ".join(f"`{n}`" for n in input_names)
    outs = ", ".join(f"`{n}`" for n in output_names)
    return f"Given the fields {ins}, produce the fields {outs}."


def to_dspy(sig: Signature) -> type:
    """Build the ``dspy.Signature`` subclass for ``sig`` (prefer ``sig.to_dspy()``, cached)."""
    import dspy
    from dspy.signatures.signature import make_signature

    fields: dict[str, tuple[Any, Any]] = {}
    for f in sig.inputs:
        kwargs: dict[str, Any] = {_IS_TYPE_UNDEFINED: not f.typed}
        if f.description is not None:
            kwargs["desc"] = f.description
        fields[f.name] = (f.type.to_python(), dspy.InputField(**kwargs))
    for f in sig.outputs:
        kwargs = {} if f.description is None else {"desc": f.description}
        fields[f.name] = (f.type.to_python(), dspy.OutputField(**kwargs))
    instructions = sig.instructions
    if instructions is None:
        instructions = default_instructions(sig.input_names, sig.output_names)
    if any(name in _SHADOWS for name in fields):
        with warnings.catch_warnings():  # pydantic: 'Field name "json" shadows an attribute'
            warnings.filterwarnings("ignore", ".*shadows an attribute", UserWarning)
            return make_signature(fields, instructions)
    return make_signature(fields, instructions)


def from_dspy(cls: type) -> Signature:
    """The ``Signature`` of a ``dspy.Signature`` subclass; ``to_dspy`` of it returns ``cls``.

    Descriptions equal to DSPy's placeholder ``"${name}"`` become None, and instructions equal
    to DSPy's default become None. Custom prefixes are not kept (DSPy deprecated them).
    """
    if not (isinstance(cls, type) and hasattr(cls, "input_fields")
            and hasattr(cls, "instructions")):
        raise SignatureError(f"from_dspy needs a dspy.Signature subclass, got {cls!r}.")
    inputs = tuple(_field(name, info, "input") for name, info in cls.input_fields.items())
    outputs = tuple(_field(name, info, "output") for name, info in cls.output_fields.items())
    instructions = cls.instructions
    names = (tuple(cls.input_fields), tuple(cls.output_fields))
    if instructions == default_instructions(*names):
        instructions = None
    sig = Signature(inputs, outputs, instructions)
    sig._memo["dspy"] = cls
    return sig


def _field(name: str, info: Any, kind: str) -> Field:
    extra = info.json_schema_extra or {}
    desc = extra.get("desc")
    if desc == f"${{{name}}}":
        desc = None
    typed = not extra.get(_IS_TYPE_UNDEFINED, False)
    return Field(name, typespec_of(info.annotation), desc, kind, typed)


def typespec_of(obj: Any) -> TypeSpec:
    """The TypeSpec of a Python typing object (``list[int]``, ``Optional[str]``, ``dspy.Image``).

    >>> str(typespec_of(typing.Dict[str, typing.List[int]]))
    'dict[str, list[int]]'
    """
    if obj is None:
        return _make("None")
    if obj is typing.Any:
        return _make("Any")
    origin, args = typing.get_origin(obj), typing.get_args(obj)
    if origin is None:
        name = _SIMPLE.get(obj) if isinstance(obj, type) else None
        if name is None:
            name = _dspy_type_name(obj)
        return _make(name)
    if origin is typing.Union or origin is types.UnionType:
        return union_of(typespec_of(a) for a in args)
    if origin is typing.Literal:
        try:
            return literal_of(args)
        except ValueError as exc:
            raise SignatureError(f"{obj!r} has no signature form: {exc}") from None
    name = _SIMPLE.get(origin)
    if name not in ("list", "dict", "tuple", "set"):
        _unknown(obj)
    try:
        return TypeSpec(name, tuple(a if a is ... else typespec_of(a) for a in args))
    except ValueError as exc:
        raise SignatureError(f"{obj!r} has no signature form: {exc}") from None


def _dspy_type_name(obj: Any) -> str:
    name = getattr(obj, "__name__", "")
    dspy = sys.modules.get("dspy")
    if dspy is not None and name in DSPY_TYPES and getattr(dspy, name, None) is obj:
        return f"dspy.{name}"
    _unknown(obj)
    return ""


def _unknown(obj: Any) -> None:
    raise SignatureError(f"Type {obj!r} has no signature text form (known: "
                         f"{', '.join(KNOWN_NAMES)}); use one of those types.")
