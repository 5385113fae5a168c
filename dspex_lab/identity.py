"""What identifies a program: a fingerprint of everything that decides its answers.

``fingerprint(obj)`` walks a value and hashes what it is made of, so that an edited program
never gets the answer of the old one (from the result cache, or a worker's built-module
cache), while the same program built twice -- in this kernel or in another one after a
restart -- gets the same fingerprint:

* code written by the user (``__main__``, notebook cells, the user's own modules): the
  bytecode and constants of functions and methods (nested code too), their defaults, closure
  cells and the globals they read, followed into other user functions and classes; classes by
  their body (methods, attributes, bases);
* things from installed libraries (dspy, the standard library, site-packages, dspex_lab) by
  ``module:qualname`` and the library version -- their code is not walked;
* values by content: containers, instance attributes (sub-modules, tools, reward functions,
  thresholds, demos), DSPy signatures with their field *types*, descriptions, prefixes and
  instructions; pydantic models, Enums and other classes used as types by their fields or
  members; anything else by its pickle state (``__reduce_ex__``), and by a repr with memory
  addresses removed when even that fails.

It never raises and never hashes an ``id()``. Shared and cyclic references are hashed as
back-references in visiting order, which is the same for identically built programs. A graph
too big or too deep to walk gets a fresh random fingerprint: a needless cache miss rather
than a stale answer.

    >>> import dspy
    >>> fingerprint(dspy.Predict("text -> value: bool")) == fingerprint(
    ...     dspy.Predict("text -> value: list[int]"))
    False
"""

from __future__ import annotations

import dis
import enum
import hashlib
import marshal
import os
import re
import sys
import sysconfig
import types
import uuid
import weakref
from typing import Annotated, Any, ForwardRef, Literal, get_args, get_origin

from dspex_lab.signatures import Signature

__all__ = ["fingerprint"]

MAX_NODES = 200_000
"""Values visited by one fingerprint before giving up (and returning a random one)."""
MAX_DEPTH = 60
"""Nesting depth walked before giving up (and returning a random fingerprint)."""

_ATOMS = frozenset({str, int, float, bool, complex, bytes, type(None), type(Ellipsis)})
_BIG = 32  # containers at least this long get a one-shot check for "all plain data"
_LONG = 1024  # strings and bytes longer than this are hashed on their own
_LIBRARY_PACKAGES = frozenset({"dspex_lab"})  # not in site-packages when installed editable
_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "_abc_impl",
                         "__signature__", "__abstractmethods__", "__parameters__",
                         "__orig_bases__", "__static_attributes__", "__firstlineno__",
                         "__slots__", "__class_vars__", "__private_attributes__"})
_ENUM_SKIP = frozenset({"_member_map_", "_value2member_map_", "_member_names_", "_new_member_",
                        "_value_repr_", "_unhashable_values_", "_member_type_", "_use_args_",
                        "_generate_next_value_", "__new__", "_hashable_values_",
                        "_singles_mask_", "_all_bits_", "_flag_mask_", "_inverted_",
                        "_boundary_", "__reduce_ex__"})
# dspy.Module attributes that differ between identical modules and do not decide answers:
# ``stage`` is random per instance, ``history`` grows with every call, callbacks observe
_DSPY_MODULE_SKIP = frozenset({"history", "callbacks", "stage"})
_ADDRESS = re.compile(r"\s+at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL",
                         "STORE_NAME", "DELETE_NAME"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "IMPORT_FROM"})

_CODE: weakref.WeakKeyDictionary[types.CodeType, tuple[str, tuple[str, ...], tuple[str, ...]]] \
    = weakref.WeakKeyDictionary()
_LIB_MODULES: dict[str, str | None] = {}


class _TooBig(Exception):
    """The graph is too big or too deep to walk."""


def fingerprint(obj: Any) -> str:
    """A hex digest of everything in ``obj`` that decides a program's answers.

    Equal for identically built values (also across processes and kernel restarts);
    different after any edit of the code, attributes, globals or types they use. Never
    raises: an unwalkable graph gets a random digest (a cache miss, never a stale answer).

    >>> fingerprint({"n": 1}) == fingerprint({"n": 1}) != fingerprint({"n": 2})
    True
    """
    try:
        token = _Walker().walk(obj, 0)
        text = repr(token)
    except Exception:  # _TooBig, RecursionError, anything odd: prefer a new key
        text = "unwalkable:" + uuid.uuid4().hex
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Walker:
    """One fingerprint's walk: back-references for shared objects, a node budget."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.keep: list[Any] = []  # what ``seen`` refers to stays alive (ids are not reused)
        self.nodes = 0

    def walk(self, obj: Any, depth: int) -> Any:
        kind = type(obj)
        if kind in _ATOMS:
            if kind in (str, bytes) and len(obj) > _LONG:  # a short token for a long value
                return (kind.__name__, len(obj), _digest(obj))
            return obj
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise _TooBig
        if kind is tuple:
            return ("t", *self._items(obj, depth))
        ref = self.seen.get(id(obj))
        if ref is not None:
            return ("ref", ref)
        self.seen[id(obj)] = len(self.seen)
        self.keep.append(obj)
        try:
            return self._walk(obj, kind, depth + 1)
        except (_TooBig, RecursionError):
            raise
        except Exception:
            return ("repr", _stable_repr(obj))

    def _items(self, seq: Any, depth: int, plain: bool = True) -> list[Any]:
        if plain and len(seq) >= _BIG:
            blob = _plain_data(seq)
            if blob is not None:
                return ["data", blob]
        return [self.walk(v, depth + 1) for v in seq]

    def _walk(self, obj: Any, kind: type, depth: int) -> Any:
        if kind is list:
            return ("l", *self._items(obj, depth))
        if kind is dict:
            return ("d", *self._dict(obj, depth))
        if kind in (set, frozenset):
            return ("set", *sorted(map(repr, self._items(list(obj), depth, plain=False))))
        if kind is types.FunctionType:
            return self._function(obj, depth)
        if isinstance(obj, type):
            return self._class(obj, depth)
        if kind is types.MethodType:
            return ("method", self.walk(obj.__func__, depth), self.walk(obj.__self__, depth))
        if kind is types.BuiltinFunctionType:
            owner = getattr(obj, "__self__", None)
            owner = None if isinstance(owner, types.ModuleType) else self.walk(owner, depth)
            return ("builtin", getattr(obj, "__module__", None), obj.__qualname__, owner)
        if kind is types.ModuleType:
            return ("module", obj.__name__, _library_version(obj.__name__) is not None)
        if kind is types.CodeType:
            return ("code", _code(obj)[0])
        if kind is types.CellType:
            try:
                return ("cell", self.walk(obj.cell_contents, depth))
            except ValueError:
                return ("cell",)
        if isinstance(obj, staticmethod | classmethod):
            return (kind.__name__, self.walk(obj.__func__, depth))
        if isinstance(obj, property):
            return ("property", *(self.walk(f, depth) for f in (obj.fget, obj.fset, obj.fdel)))
        if isinstance(obj, enum.Enum):
            return ("member", self.walk(kind, depth), obj.name)
        if get_origin(obj) is not None:  # list[int], Optional[X], Literal["a"], Annotated
            return ("generic", self.walk(get_origin(obj), depth),
                    *(self.walk(a, depth) for a in get_args(obj)))
        return self._instance(obj, kind, depth)

    def _dict(self, obj: dict, depth: int) -> list[Any]:
        if len(obj) >= _BIG:
            blob = _plain_data(obj)
            if blob is not None:
                return ["data", blob]
        return [(self.walk(k, depth), self.walk(v, depth)) for k, v in obj.items()]

    # -- code ----------------------------------------------------------------------------------
    def _function(self, fn: types.FunctionType, depth: int) -> Any:
        name = _library_name(fn)
        if name is not None:
            return ("lib", name)
        digest, global_names, attr_names = _code(fn.__code__)
        scope = fn.__globals__
        reads = []
        for name in global_names:
            value = scope.get(name, _MISSING)
            if value is _MISSING:
                reads.append((name, "missing"))
            elif isinstance(value, types.ModuleType) and _library_version(value.__name__) is None:
                # a user module: the attributes the code may read from it
                reads.append((name, "module", value.__name__, [
                    (a, self.walk(getattr(value, a), depth)) for a in attr_names
                    if a in vars(value)]))
            else:
                reads.append((name, self.walk(value, depth)))
        return ("fn", fn.__module__, fn.__qualname__, digest,
                self.walk(fn.__defaults__, depth), self.walk(fn.__kwdefaults__, depth),
                self.walk(fn.__closure__, depth), reads,
                self.walk(fn.__dict__, depth) if fn.__dict__ else None)

    def _class(self, cls: type, depth: int) -> Any:
        if _is_dspy_signature(cls):
            return self._dspy_signature(cls, depth)
        name = _library_name(cls)
        if name is not None:
            return ("lib", name)
        head = ("class", cls.__module__, cls.__qualname__,
                [self.walk(b, depth) for b in cls.__bases__])
        body = vars(cls)
        skip = _CLASS_SKIP
        extra: list[Any] = []
        if issubclass(cls, enum.Enum):
            skip = skip | _ENUM_SKIP | set(cls.__members__)
            extra = [(m.name, self.walk(m._value_, depth)) for m in cls.__members__.values()]
        fields = body.get("__pydantic_fields__")
        if isinstance(fields, dict):  # a pydantic model: its fields, not pydantic's internals
            extra = [self._field(n, f, cls, depth) for n, f in fields.items()]
            body = {k: v for k, v in body.items() if k == "__pydantic_decorators__"
                    or not (k.startswith("__pydantic") or k == "__annotations__")}
        items = [(k, self.walk(v, depth)) for k, v in body.items() if k not in skip]
        return (*head, extra, items)

    def _dspy_signature(self, cls: type, depth: int) -> Any:
        """A dspy.Signature class: instructions and every field's type, desc and prefix."""
        fields = [self._field(n, f, cls, depth) for n, f in cls.model_fields.items()]
        methods = [(k, self.walk(v, depth)) for k, v in vars(cls).items()
                   if isinstance(v, types.FunctionType)]
        return ("dspy.Signature", cls.__name__, cls.instructions, fields, methods)

    def _field(self, name: str, field: Any, owner: type, depth: int) -> Any:
        """A pydantic FieldInfo: what shapes the prompt and the parsing of the value."""
        scope = getattr(sys.modules.get(owner.__module__), "__dict__", {})
        return (name, self._annotation(getattr(field, "annotation", None), scope, depth),
                *(self.walk(getattr(field, a, None), depth) for a in
                  ("default", "default_factory", "description", "alias", "json_schema_extra",
                   "metadata")))

    def _annotation(self, ann: Any, scope: dict[str, Any], depth: int) -> Any:
        """A field type; names left as text (``from __future__ import annotations``, forward
        references) are looked up in the defining module, so an edit of what they name counts."""
        if depth > MAX_DEPTH:
            raise _TooBig
        if isinstance(ann, str | ForwardRef):
            text = ann if isinstance(ann, str) else ann.__forward_arg__
            try:
                # what typing.get_type_hints does; a module's dict is used as it is (no copy)
                resolved = eval(text, scope if "__builtins__" in scope else dict(scope))
            except Exception:
                return ("unresolved", text)
            if isinstance(resolved, str | ForwardRef):
                return ("unresolved", text)
            return ("named", text, self._annotation(resolved, scope, depth + 1))
        origin = get_origin(ann)
        if origin is None or origin in (Literal, Annotated):
            return self.walk(ann, depth)
        return ("generic", self.walk(origin, depth),
                *(self._annotation(a, scope, depth + 1) for a in get_args(ann)))

    # -- other values --------------------------------------------------------------------------
    def _instance(self, obj: Any, kind: type, depth: int) -> Any:
        head = self.walk(kind, depth)
        spec = _dspex_signature_text(obj)
        if spec is not None:
            return ("signature", spec)
        if _is_dspy(kind, "BaseLM"):
            return ("lm", _lm_identity(obj))
        state = getattr(obj, "__dict__", None)
        if _is_dspy(kind, "BaseModule") and isinstance(state, dict):
            return ("dspy.Module", head, [(k, self.walk(v, depth)) for k, v in state.items()
                                          if k not in _DSPY_MODULE_SKIP])
        if _library_name(kind) is None and isinstance(state, dict):  # a user class
            slots = [(s, self.walk(getattr(obj, s), depth)) for s in _slots(kind)
                     if hasattr(obj, s)]
            return ("obj", head, self._dict(state, depth), slots)
        wrapped = getattr(obj, "__wrapped__", None)  # functools.lru_cache, decorators
        wrapped = None if wrapped is None else self.walk(wrapped, depth)
        reduced = obj.__reduce_ex__(4)
        if isinstance(reduced, str):  # pickled as a global name
            return ("global", head, reduced, wrapped)
        parts = list(reduced[:3]) + [list(it) if it is not None else None
                                     for it in reduced[3:5]]
        return ("reduce", head, self.walk(tuple(parts), depth), wrapped)


_MISSING = object()


def _digest(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _plain_data(obj: Any) -> str | None:
    """A digest of a big container made only of plain data (numbers, strings, bytes and
    containers of them), or None. ``marshal`` (format 2: no back-references, so the bytes
    depend on values only) does it at C speed: ~5 ms for 100,000 entries."""
    try:
        blob = marshal.dumps(obj, 2)
    except (ValueError, TypeError):
        return None
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def _code(code: types.CodeType) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(digest, global names read, attribute names used) of ``code`` and the code nested in
    it; cached, code objects being immutable. File name and line numbers are left out (a
    notebook cell's file name changes with each run)."""
    hit = _CODE.get(code)
    if hit is not None:
        return hit
    consts, globals_, attrs = [], set(), set()
    for const in code.co_consts:
        if type(const) is types.CodeType:
            sub = _code(const)
            consts.append(("code", sub[0]))
            globals_.update(sub[1])
            attrs.update(sub[2])
        else:
            consts.append(_const(const))
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS:
            globals_.add(ins.argval)
        elif ins.opname in _ATTR_OPS:
            attrs.add(ins.argval)
    body = (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_argcount, code.co_posonlyargcount,
            code.co_kwonlyargcount, code.co_flags, code.co_name)
    hit = _CODE[code] = (_digest(repr(body)), tuple(sorted(globals_)), tuple(sorted(attrs)))
    return hit


def _const(value: Any) -> Any:
    if type(value) is frozenset:  # iteration order of str members differs between processes
        return ("set", *sorted(repr(_const(v)) for v in value))
    if type(value) is tuple:
        return ("t", *(_const(v) for v in value))
    return value


def _library_name(obj: Any) -> str | None:
    """``module:qualname@version`` if ``obj`` is importable from an installed library."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    version = _library_version(module)
    if version is None:
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not obj:  # defined in a function, or replaced: walk it
        return None
    return f"{module}:{qualname}@{version}"


def _library_version(module: str) -> str | None:
    """The version of the installed library ``module`` belongs to ('' when it has none), or
    None when it is user code (``__main__``, a notebook, a module outside site-packages)."""
    if module in _LIB_MODULES:
        return _LIB_MODULES[module]
    version: str | None = None
    mod = sys.modules.get(module)
    top = module.partition(".")[0]
    if mod is not None and module != "__main__":
        path = getattr(mod, "__file__", None)
        origin = getattr(getattr(mod, "__spec__", None), "origin", None)
        if (top in _LIBRARY_PACKAGES or origin in ("built-in", "frozen")
                or (path is not None and _in_library_dirs(path))):
            version = str(getattr(sys.modules.get(top), "__version__", ""))
    if mod is not None:
        _LIB_MODULES[module] = version
    return version


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")
            if k in paths}
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


_DIRS = _library_dirs()


def _in_library_dirs(path: str) -> bool:
    return os.path.realpath(path).startswith(_DIRS)


def _is_dspy(kind: type, base: str) -> bool:
    return any(c.__name__ == base and c.__module__.startswith("dspy") for c in kind.__mro__)


def _is_dspy_signature(cls: type) -> bool:
    return _is_dspy(type(cls), "SignatureMeta") and hasattr(cls, "model_fields")


def _dspex_signature_text(obj: Any) -> tuple[str, str | None] | None:
    if type(obj) is Signature:
        return (str(obj), obj.instructions)
    return None


def _lm_identity(lm: Any) -> str:
    from dspex_lab.lm.spec import lm_identity

    return lm_identity(lm)


def _slots(kind: type) -> list[str]:
    names: list[str] = []
    for cls in kind.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return [n for n in names if n not in ("__dict__", "__weakref__")]


def _stable_repr(obj: Any) -> str:
    """``repr(obj)`` without memory addresses (the same for equal objects in two kernels)."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__module__}.{type(obj).__qualname__}>"
    return _ADDRESS.sub("", text)
