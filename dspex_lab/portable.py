"""Notebook-defined signature classes and pydantic models that reach workers intact.

A class defined in a notebook (``__main__``) travels to a worker by value (cloudpickle). With
``from __future__ import annotations`` in its cell, its annotations are strings, and two
things break on the way: a pydantic model whose forward references were not resolved yet is
"not fully defined" in the worker (whose ``__main__`` does not have the names), and a class
whose pydantic schema refers to models it only names as strings can be rebuilt in the wrong
order (``SchemaError ... KeyError: 'ref'``/``'type'`` while the worker decodes the task).

``make_portable`` fixes both in the kernel, right before pickling, for every ``dspy.Signature``
class and pydantic model a program uses that travels by value: it completes models with the
defining module's names (``model_rebuild``) and replaces string annotations by the objects they
name, as if the cell had no ``from __future__ import annotations``. Classes that travel by
reference (importable modules) are left alone.

    >>> make_portable(MySignature, my_module)      # done by Program when it is pickled
"""

from __future__ import annotations

import contextlib
import enum
import sys
import typing
import weakref
from typing import Any

__all__ = ["make_portable"]

_DONE: weakref.WeakSet[type] = weakref.WeakSet()


def make_portable(*objects: Any) -> None:
    """Resolve the annotations of the notebook-defined signature classes and pydantic models
    reachable from ``objects`` (signature classes, ``dspy.Module`` instances, None)."""
    seen: set[int] = set()
    for obj in objects:
        if obj is None:
            continue
        if isinstance(obj, type):
            _fix_class(obj, seen)
        else:
            for cls in _module_signatures(obj):
                _fix_class(cls, seen)


def _module_signatures(module: Any) -> list[type]:
    """The signature classes held by ``module`` and its sub-modules."""
    found: list[type] = []
    seen: set[int] = set()
    todo = [module]
    while todo:  # modules, and the modules in their lists, tuples and dicts
        sub = todo.pop()
        if id(sub) in seen or not hasattr(sub, "__dict__"):
            continue
        seen.add(id(sub))
        for name, value in vars(sub).items():
            if name in _NOT_WALKED:
                continue
            items = value.values() if isinstance(value, dict) else \
                value if isinstance(value, list | tuple) else (value,)
            for item in items:
                if isinstance(item, type):
                    if _is_model(item):
                        found.append(item)
                elif _is_module(item):
                    todo.append(item)
    return found


_NOT_WALKED = frozenset({"history", "callbacks"})  # a module's call log grows with every call


def _is_module(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("dspy")
               for c in type(obj).__mro__)


def _fix_class(cls: type, seen: set[int]) -> None:
    if id(cls) in seen or not (_is_model(cls) or issubclass(cls, enum.Enum)):
        return
    seen.add(id(cls))
    if not _by_value(cls) or not _is_model(cls):
        return
    done = cls in _DONE
    if not done:
        complete = _complete(cls)
        _resolve_annotations(cls)
        if complete:
            _DONE.add(cls)
    for field in getattr(cls, "model_fields", {}).values():
        for ref in _classes_in(field.annotation):
            _fix_class(ref, seen)


def _is_model(cls: type) -> bool:
    """A pydantic model class (``dspy.Signature`` classes are pydantic models too)."""
    return hasattr(cls, "model_fields") and hasattr(cls, "model_rebuild")


def _by_value(cls: type) -> bool:
    """True if cloudpickle sends ``cls`` by value (defined in ``__main__`` or not importable)."""
    if cls.__module__ == "__main__":
        return True
    try:
        import cloudpickle

        return not cloudpickle.cloudpickle._should_pickle_by_reference(cls)
    except Exception:  # a private helper of cloudpickle: assume importable
        return False


def _complete(cls: Any) -> bool:
    """Build a pydantic model that is not fully defined yet, with its module's names."""
    if getattr(cls, "__pydantic_complete__", True):
        return True
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else None
    try:
        return bool(cls.model_rebuild(raise_errors=False, _types_namespace=namespace))
    except Exception:  # leave it: the worker says what is missing
        return False


def _resolve_annotations(cls: Any) -> None:
    """Replace the class's own string annotations by the objects they name."""
    own = cls.__dict__.get("__annotations__")  # noqa: RUF063 (the dict itself, unevaluated)
    if not own or not any(isinstance(v, str) for v in own.values()):
        return
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # a name that does not resolve: use what pydantic resolved
        hints = {}
    fields = getattr(cls, "model_fields", {})
    resolved = {}
    for name, value in own.items():
        if isinstance(value, str):
            value = hints.get(name, fields[name].annotation if name in fields else value)
        resolved[name] = value
    with contextlib.suppress(AttributeError, TypeError):  # a class that refuses: leave it
        cls.__annotations__ = resolved


def _classes_in(annotation: Any) -> list[type]:
    """The classes named inside a type annotation (``list[Item] | None`` -> ``[Item]``)."""
    out: list[type] = []
    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and not typing.get_args(item):
            out.append(item)
        stack.extend(a for a in typing.get_args(item) if not isinstance(a, str | int | float))
    return out
