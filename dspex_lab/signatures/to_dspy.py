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
import weakref
from typing import Any

from dspex_lab.errors import SignatureError
from dspex_lab.signatures.known import DSPY_TYPES, KNOWN_NAMES
from dspex_lab.signatures.spec import (
    Field,
    Signature,
    TypeSpec,
    _make,
    custom_type,
    literal_of,
    union_of,
    with_form,
)

__all__ = ["default_instructions", "from_dspy", "is_annotation", "to_dspy", "typespec_of"]

_IS_TYPE_UNDEFINED = "IS_TYPE_UNDEFINED"  # dspy.utils.constants.IS_TYPE_UNDEFINED
_SIMPLE = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes",
           type(None): "None", _dt.datetime: "datetime", _dt.date: "date",
           list: "list", dict: "dict", tuple: "tuple", set: "set"}
_BUILT: weakref.WeakSet = weakref.WeakSet()  # classes to_dspy built (rebuilt from fields)
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

    source = sig._memo.get("source")
    if source is not None:
        return source
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
            cls = make_signature(fields, instructions)
    else:
        cls = make_signature(fields, instructions)
    _BUILT.add(cls)
    return cls


def from_dspy(cls: type) -> Signature:
    """The ``Signature`` of a ``dspy.Signature`` subclass; ``to_dspy`` of it returns ``cls``.

    Every annotation a class signature can have is accepted (Enums, pydantic models, dspy types,
    ``list[Model]``, any class): types outside the known names become custom ``TypeSpec``s that
    hold the object. Descriptions equal to DSPy's placeholder ``"${name}"`` become None, and
    instructions equal to DSPy's default become None. The class itself is kept, and travels with
    the Signature when it is pickled, so ``to_dspy()`` returns it with every detail (prefixes,
    defaults, validators) in workers too.
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
    if cls not in _BUILT:
        sig._memo["source"] = cls
    return sig


def _field(name: str, info: Any, kind: str) -> Field:
    extra = info.json_schema_extra or {}
    desc = extra.get("desc")
    if desc == f"${{{name}}}":
        desc = None
    typed = not extra.get(_IS_TYPE_UNDEFINED, False)
    try:
        spec = typespec_of(info.annotation, custom=True)
    except SignatureError:  # DSPy accepted it, so keep it as it is
        spec = custom_type(_type_name(info.annotation), info.annotation)
    return Field(name, spec, desc, kind, typed)


def typespec_of(obj: Any, name: str | None = None, custom: bool = False) -> TypeSpec:
    """The TypeSpec of a Python typing object (``list[int]``, ``Optional[str]``, ``dspy.Image``).

    ``to_python()`` of the result is ``obj`` itself. With ``custom=True``, objects outside the
    known names (pydantic models, Enums, dataclasses, ``typing.Sequence[int]``...) become custom
    TypeSpecs named ``name`` (default: the object's own name); without it they raise
    SignatureError, as do objects that are not types.

    >>> str(typespec_of(typing.Dict[str, typing.List[int]]))
    'dict[str, list[int]]'
    """
    if obj is None:
        return _make("None")
    if obj is typing.Any:
        return _make("Any")
    origin, args = typing.get_origin(obj), typing.get_args(obj)
    if origin is None:
        known = _SIMPLE.get(obj) if isinstance(obj, type) else None
        if known is None:
            known = _dspy_type_name(obj)
        return _make(known) if known is not None else _custom(obj, name, custom)
    if origin is typing.Union or origin is types.UnionType:
        spec = union_of(typespec_of(a, custom=custom) for a in args)
        return with_form(spec, ("py", obj)) if spec.name == "Union" else spec
    if origin is typing.Literal:
        try:
            return with_form(literal_of(args), ("py", obj))
        except ValueError:  # Enum members, bytes...: keep the Literal as it is
            return _custom(obj, name, custom)
    known = _SIMPLE.get(origin)
    if known in _GENERIC_ALIASES:
        parts = tuple(a if a is ... else typespec_of(a, custom=custom) for a in args)
        try:
            spec = TypeSpec(known, parts)
        except ValueError:  # e.g. tuple[()]: keep it as it is
            return _custom(obj, name, custom)
        return with_form(spec, ("py", obj))
    return _custom(obj, name, custom)


_GENERIC_ALIASES = ("list", "dict", "tuple", "set")


def is_annotation(obj: Any) -> bool:
    """True for what ``dspy.Signature`` accepts as a field type (its own check)."""
    return isinstance(obj, (type, typing._GenericAlias, types.GenericAlias,  # type: ignore[attr-defined]
                            typing._SpecialForm, types.UnionType))  # type: ignore[attr-defined]


def _custom(obj: Any, name: str | None, custom: bool) -> TypeSpec:
    if not custom:
        raise SignatureError(f"Type {obj!r} has no signature text form (known: "
                             f"{', '.join(KNOWN_NAMES)}); name it in a signature string where "
                             "it is in scope, or use TypeSpec.of(obj, custom=True).")
    if not is_annotation(obj):
        raise SignatureError(f"{obj!r} is not a type, so it cannot be a field type; use a class "
                             f"or a typing form such as list[str] (known names: "
                             f"{', '.join(KNOWN_NAMES)}).")
    return custom_type(name or _type_name(obj), obj)


def _type_name(obj: Any) -> str:
    """A short readable name: ``MyContainer.Query``, ``Color``, ``Sequence[int]``."""
    if isinstance(obj, type):
        qual = getattr(obj, "__qualname__", "") or getattr(obj, "__name__", "") or repr(obj)
        return qual.rsplit("<locals>.", 1)[-1]
    text = repr(obj)
    for prefix in ("typing.", "collections.abc."):
        text = text.replace(prefix, "")
    return text


def _dspy_type_name(obj: Any) -> str | None:
    name = getattr(obj, "__name__", "")
    dspy = sys.modules.get("dspy")
    if dspy is not None and name in DSPY_TYPES and getattr(dspy, name, None) is obj:
        return f"dspy.{name}"
    return None
