"""How a function travels to a worker: cloudpickle, with a cache that is never stale.

A function defined in a notebook (``__main__``) or a closure is pickled *by value*: its code
plus the current values of the globals and closure cells it uses. Pickling it again at every
``submit`` keeps those values current, and costs 20-100 us. The cache below skips that only
when nothing the pickle holds can have changed: the same code object, and every global,
default and closure value it uses is the *same object* as last time and cannot change in
place (numbers, strings, bytes, tuples of those, importable modules, functions and classes).
A function that reads a dict, a list or a DataFrame from the notebook is pickled afresh each
time. An importable function travels as a mere reference and is pickled once.

    >>> blob = dump_fn(my_notebook_function)
    >>> fn_name(my_notebook_function)
    '__main__.my_notebook_function'
"""

from __future__ import annotations

import sys
import types
import weakref
from typing import Any

import cloudpickle

from dspex_lab.exchange import pickling

__all__ = ["dump_fn", "fn_name"]

_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None), range, type(Ellipsis),
                    types.BuiltinFunctionType})
_MISSING = object()  # a global the function uses that is not defined (yet)
# fn -> (the objects its pickle was made of, or None for an importable fn; the pickle)
_BLOBS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...] | None, bytes]] = \
    weakref.WeakKeyDictionary()
_NAMES: weakref.WeakKeyDictionary[types.CodeType, tuple[str, ...]] = weakref.WeakKeyDictionary()


def fn_name(fn: Any) -> str:
    """``module.qualname`` of a callable, for messages and telemetry."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return type(fn).__name__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else name


def dump_fn(fn: Any) -> bytes:
    """Cloudpickle ``fn`` for a worker, or say clearly why it cannot travel."""
    try:
        hit = _BLOBS.get(fn)
    except TypeError:  # not weak-referenceable (a builtin): cheap to pickle anyway
        hit = None
    if hit is not None:
        parts, blob = hit
        if parts is None or _same(parts, _parts(fn)):
            return blob
    if not callable(fn):
        raise TypeError(f"{fn!r} is not callable; pass a function (or any callable) to run.")
    try:
        blob = pickling.dumps(fn, protocol=5)
    except Exception as exc:
        raise TypeError(
            f"The function {fn_name(fn)} cannot be sent to a worker: {type(exc).__name__}: "
            f"{exc}. It (or something it refers to) holds a lock, an open file or a "
            "connection; create such objects inside the function, or keep them in a "
            "session with session.store(name, factory).") from exc
    if isinstance(fn, types.FunctionType):
        if _by_reference(fn):
            _BLOBS[fn] = (None, blob)
        else:
            parts = _parts(fn)
            if parts is not None:
                _BLOBS[fn] = (parts, blob)
            else:
                _BLOBS.pop(fn, None)
    return blob


def _same(old: tuple[Any, ...], new: tuple[Any, ...] | None) -> bool:
    return new is not None and len(old) == len(new) and all(
        a is b for a, b in zip(old, new, strict=True))


def _parts(fn: types.FunctionType) -> tuple[Any, ...] | None:
    """Everything a by-value pickle of ``fn`` is made of, or None if some of it could change
    without changing identity (a mutable value)."""
    if fn.__dict__ or fn.__kwdefaults__:
        return None
    parts: list[Any] = [fn.__code__, fn.__name__, fn.__qualname__, fn.__module__, fn.__doc__]
    values = [*(fn.__defaults__ or ()), *fn.__annotations__.values()]
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            return None
    scope = fn.__globals__
    values.extend(scope.get(name, _MISSING) for name in _global_names(fn.__code__))
    if not all(v is _MISSING or _frozen(v) for v in values):
        return None
    return (*parts, *values)


def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """Names the code (and the code nested in it) may read as globals."""
    names = _NAMES.get(code)
    if names is None:
        found = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found.update(_global_names(const))
        names = _NAMES[code] = tuple(sorted(found))
    return names


def _frozen(value: Any, depth: int = 0) -> bool:
    """True if ``value`` cannot change without becoming another object."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind in (tuple, frozenset):
        return depth < 3 and len(value) <= 64 and all(_frozen(v, depth + 1) for v in value)
    if kind is types.ModuleType:
        return value.__name__ in sys.modules and value.__name__ != "__main__"
    if isinstance(value, types.FunctionType | type):
        return _by_reference(value)
    return False


def _by_reference(obj: Any) -> bool:
    """True if cloudpickle sends ``obj`` (a function or class) as an import path."""
    if getattr(obj, "__module__", None) == "__main__":
        return False
    try:
        return bool(cloudpickle.cloudpickle._should_pickle_by_reference(obj))
    except Exception:  # a private helper of cloudpickle: be safe if it changes
        return False
