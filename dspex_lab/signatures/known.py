"""The allow-list of type names a signature may use, and what each one means.

Every spelling the parser accepts maps to one canonical name (``List`` and ``typing.List`` both
mean ``list``). A name is one of four kinds:

* ``scalar``  -- no type arguments: ``str int float bool bytes Any None datetime date`` and the
  DSPy value types ``dspy.Image dspy.Audio dspy.File dspy.History dspy.Tool dspy.ToolCalls
  dspy.ToolCallResults dspy.Code dspy.Reasoning``;
* ``generic`` -- containers with a fixed number of type arguments (``list set`` take 1, ``dict``
  takes 2, ``tuple`` takes any number and an optional trailing ``...``); bare ``list`` is allowed;
* ``special`` -- the type constructors ``Optional Union Literal``: they never appear as a
  ``TypeSpec.name`` of their own (``Optional[T]`` becomes the union ``T | None``).

Other names are custom types, resolved like DSPy resolves them (``resolve.py``): from the
``typing`` module, the caller's frames or an imported module, never by importing anything.
``TYPING_SPELLINGS`` records which spellings DSPy builds as ``typing`` aliases (``List[int]`` is
``typing.List[int]``, not ``list[int]``), so ``TypeSpec.to_python()`` can equal DSPy's object.
"""

from __future__ import annotations

import datetime as _dt
import typing
from collections.abc import Callable

__all__ = [
    "ALIASES", "ARITY", "DSPY_TYPES", "KNOWN_NAMES", "RESERVED_FIELD_NAMES", "TYPING_SPELLINGS",
    "is_scalar", "python_scalar",
]

#: DSPy's own value types that a string signature may name (``image: dspy.Image -> caption``).
DSPY_TYPES = ("Image", "Audio", "File", "History", "Tool", "ToolCalls", "ToolCallResults", "Code",
              "Reasoning")

_SCALARS: dict[str, Callable[[], object]] = {
    "str": lambda: str,
    "int": lambda: int,
    "float": lambda: float,
    "bool": lambda: bool,
    "bytes": lambda: bytes,
    "Any": lambda: typing.Any,
    "None": lambda: type(None),
    "datetime": lambda: _dt.datetime,
    "date": lambda: _dt.date,
}
for _name in DSPY_TYPES:
    _SCALARS[f"dspy.{_name}"] = (lambda n: lambda: getattr(__import__("dspy"), n))(_name)

#: Number of type arguments of each generic; -1 means "any number" (tuple).
ARITY = {"list": 1, "set": 1, "dict": 2, "tuple": -1}

#: Every accepted spelling -> canonical name (scalars, generics and the special constructors).
ALIASES: dict[str, str] = {name: name for name in (*_SCALARS, *ARITY)}
ALIASES.update({
    "NoneType": "None",
    "typing.Any": "Any",
    "datetime.datetime": "datetime",
    "datetime.date": "date",
    "List": "list", "typing.List": "list",
    "Set": "set", "typing.Set": "set",
    "Dict": "dict", "typing.Dict": "dict",
    "Tuple": "tuple", "typing.Tuple": "tuple",
    "Optional": "Optional", "typing.Optional": "Optional",
    "Union": "Union", "typing.Union": "Union",
    "Literal": "Literal", "typing.Literal": "Literal",
})

#: Spellings of generics that DSPy builds from the ``typing`` alias of that name.
TYPING_SPELLINGS = {f"{prefix}{name}": name for name in ("List", "Dict", "Set", "Tuple")
                    for prefix in ("", "typing.")}

#: The names listed in "unknown type" messages (canonical spellings only).
KNOWN_NAMES = (*_SCALARS, *ARITY, "Optional", "Union", "Literal")

#: Field names that break ``dspy.Signature`` (they collide with attributes DSPy or pydantic use).
RESERVED_FIELD_NAMES = frozenset({
    "fields", "input_fields", "output_fields", "instructions", "signature", "model_config",
    "model_dump", "model_dump_json", "model_validate", "model_validate_json",
    "model_validate_strings",
})


def python_scalar(name: str) -> object:
    """The Python object for a scalar type name, e.g. ``python_scalar("int") is int``."""
    return _SCALARS[name]()


def is_scalar(name: str) -> bool:
    """True for names that take no type arguments (``str``, ``dspy.Image``...)."""
    return name in _SCALARS
