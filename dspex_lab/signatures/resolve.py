"""Custom type names in signature text, found where ``dspy.Signature`` finds them.

``dspy.Signature("query: MyContainer.Query -> score: float")`` looks ``MyContainer`` up in the
caller's frames (locals, then globals, walking up to 100 frames). ``lookup`` does the same, with
two differences that make it work through dspex_lab's own API and in notebooks:

* the walk starts at the first frame outside the dspex_lab package, so
  ``dspex_lab.predict("q: MyModel -> a", ...)`` sees the user's ``MyModel``;
* when no frame has the name, the notebook's namespace (``__main__`` and IPython's ``user_ns``)
  is searched, so magics and background threads find notebook classes too.

Like DSPy, names of the ``typing`` module (``Sequence``, ``FrozenSet``...) and the builtins DSPy
knows (``frozenset``, ``complex``...) resolve statically, and a name found nowhere else may be a
module; unlike DSPy, modules are only taken from ``sys.modules`` and never imported (parsing a
signature must not run code).

>>> import typing
>>> lookup("Sequence.__name__") == ("Sequence", False)
True
"""

from __future__ import annotations

import builtins
import sys
import typing
from typing import Any

__all__ = ["MAX_FRAMES", "NOT_FOUND", "lookup"]

#: How many frames the walk looks at (DSPy's bound).
MAX_FRAMES = 100
NOT_FOUND: Any = object()

_TYPING = dict(typing.__dict__)
_BUILTIN_TYPES = {t.__name__: t for t in (int, str, float, bool, list, tuple, dict, set, frozenset,
                                          complex, bytes, bytearray)}


def lookup(dotted: str) -> tuple[Any, bool]:
    """``(object, dynamic)`` for a (dotted) name, or ``(NOT_FOUND, True)``.

    ``dynamic`` is True when the answer depends on the caller (frames, notebook, modules), so a
    cached parse of the same text must check the name again. Raises ``AttributeError`` naming
    the missing part when a dotted name's prefix resolves but an attribute does not.
    """
    base, _, rest = dotted.partition(".")
    obj, dynamic = _base(base)
    if obj is NOT_FOUND or not rest:
        return obj, dynamic
    path = base
    for attr in rest.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AttributeError(f"{path!r} has no attribute {attr!r}") from None
        path = f"{path}.{attr}"
    return obj, dynamic


def _base(name: str) -> tuple[Any, bool]:
    obj = _TYPING.get(name, NOT_FOUND)
    if obj is not NOT_FOUND:
        return obj, False
    obj = _BUILTIN_TYPES.get(name, NOT_FOUND)
    if obj is not NOT_FOUND:
        return obj, False
    if not hasattr(builtins, name):  # DSPy never looks builtin names up in frames either
        obj = _from_caller(name)
        if obj is not NOT_FOUND:
            return obj, True
    module = sys.modules.get(name)
    return (NOT_FOUND if module is None else module), True


def _from_caller(name: str) -> Any:
    frame = sys._getframe(1)
    try:
        while frame is not None and _internal(frame):
            frame = frame.f_back
        for _ in range(MAX_FRAMES):
            if frame is None:
                break
            local = frame.f_locals
            if name in local:
                return local[name]
            if name in frame.f_globals:
                return frame.f_globals[name]
            frame = frame.f_back
    finally:
        del frame
    return _from_notebook(name)


def _internal(frame: Any) -> bool:
    module = frame.f_globals.get("__name__") or ""
    return module == "dspex_lab" or module.startswith("dspex_lab.")


def _from_notebook(name: str) -> Any:
    main = sys.modules.get("__main__")
    space = getattr(main, "__dict__", None) or {}
    if name in space:
        return space[name]
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") \
        else None
    user_ns = getattr(shell, "user_ns", None) or {}
    return user_ns.get(name, NOT_FOUND)
