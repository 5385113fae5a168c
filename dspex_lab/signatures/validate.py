"""Check and coerce values against a signature's fields, listing every problem at once.

One checker is compiled per ``TypeSpec`` (and cached); no pydantic model is built. The rules
follow pydantic's lax mode where it is safe, and are strict where lax mode guesses:

==============  ===========================================================================
type            accepts (and returns)
==============  ===========================================================================
``str``         str only -- never numbers or bytes
``int``         int (also numpy integers); a float with no fractional part (``3.0`` -> ``3``,
                as pydantic does); never bool, never strings (``"3"`` is an error)
``float``       float or int (``3`` -> ``3.0``; numpy numbers too); never bool or strings
``bool``        bool (and numpy bool) only -- never ``0``/``1`` or ``"true"``
``bytes``       bytes or bytearray (-> bytes)
``None``        None
``Any``         anything, unchanged
``datetime``    datetime, or an ISO 8601 string (parsed); ``date``: date or ISO date string
``dspy.X``      an instance, or whatever ``X.model_validate`` accepts (e.g. an image URL)
``list[T]``     list, tuple or 1-d numpy array (-> list); each item checked (``items[2]``)
``tuple[...]``  list or tuple (-> tuple) of the right length; ``tuple[T, ...]`` any length
``set[T]``      set, frozenset, list or tuple (-> set)
``dict[K, V]``  any mapping (-> dict); keys and values checked (``scores['a']``)
``Literal``     one of the values, type included (``True`` is not ``1``)
``A | B``       the member whose type matches exactly, else the first member that accepts it
custom types    an instance, or what pydantic's ``TypeAdapter`` accepts (a dict for a model,
                a value for an Enum); a class pydantic cannot describe: instances only
untyped input   any value but None, unchanged (``notes=[]`` as in DSPy's tutorials); an
                untyped *output* is ``str``, as in DSPy
==============  ===========================================================================

A field whose type accepts None (``T | None``, ``Any``) may be missing: it becomes None.
Any other missing field, and any unknown key, is a problem.

>>> from dspex_lab.signatures import signature
>>> signature("x: list[int], y: float -> z").validate_inputs({"x": (1, 2), "y": 3})
{'x': [1, 2], 'y': 3.0}
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import reprlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dspex_lab.errors import ValidationError
from dspex_lab.signatures.known import is_scalar, python_scalar
from dspex_lab.signatures.spec import Field, TypeSpec

__all__ = ["compile_fields", "compile_type"]

Problems = list[tuple[str, str]]
Path = Any  # a field name, or (parent_path, key) built lazily and formatted only on failure
Checker = Callable[[Any, Path, Problems], Any]

_CACHE: dict[TypeSpec, Checker] = {}
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 40


def compile_fields(fields: Iterable[Field], what: str) -> Callable[[Any], dict]:
    """A function that validates a dict of ``what`` (``"inputs"``/``"outputs"``) for ``fields``."""
    plan = [(f.name, _untyped if f.kind == "input" and not f.typed else compile_type(f.type),
             f.type.optional) for f in fields]
    names = frozenset(name for name, _, _ in plan)

    def validate(values: Any) -> dict:
        if not isinstance(values, Mapping):
            raise ValidationError([("*", f"expected a dict of {what}, got {_show(values)}")], what)
        problems: Problems = []
        out = {}
        found = 0
        for name, check, optional in plan:
            if name in values:
                found += 1
                out[name] = check(values[name], name, problems)
            elif optional:
                out[name] = None
            else:
                problems.append((name, "is missing; this field is required"))
        if len(values) > found:
            expected = ", ".join(repr(n) for n, _, _ in plan)
            problems.extend((str(k), f"is not a field of this signature (expected {expected})")
                            for k in values if k not in names)
        if problems:
            raise ValidationError(problems, what)
        return out

    return validate


def compile_type(spec: TypeSpec) -> Checker:
    """The (cached) checker ``check(value, path, problems) -> coerced value`` for ``spec``."""
    check = _CACHE.get(spec)
    if check is None:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        check = _CACHE[spec] = _build(spec)
    return check


def _fmt(path: Path) -> str:
    if type(path) is not tuple:
        return str(path)
    parent, key = path
    return f"{_fmt(parent)}[{key!r}]"


def _show(value: Any) -> str:
    return f"{type(value).__name__} {_SHOW.repr(value)}"


def _bad(problems: Problems, path: Path, expected: str, value: Any, why: str = "") -> Any:
    problems.append((_fmt(path), f"expected {expected}, got {_show(value)}{why}"))
    return value


def _exact(check: Checker, typ: type | None) -> Checker:
    check.exact = typ  # values of exactly this type pass unchanged (fast paths in containers)
    return check


def _build(spec: TypeSpec) -> Checker:
    name, args = spec.name, spec.args
    if spec.custom:
        return _custom(spec)
    if name == "Union":
        return _union(spec, [compile_type(a) for a in args])
    if name == "Literal":
        return _literal(spec)
    if is_scalar(name):
        return _SCALARS[name]() if name in _SCALARS else _dspy_type(name)
    if name == "dict":
        return _dict(*(compile_type(a) for a in args)) if args else _dict(_any, _any)
    items = [_any] if not args else [(_any if a is ... else compile_type(a)) for a in args]
    if name == "tuple" and args and args[-1] is not ...:
        return _fixed_tuple(str(spec), items)
    return _sequence(name, items[0])


# -- scalars -------------------------------------------------------------------------------------
def _any(value: Any, path: Path, problems: Problems) -> Any:
    return value


def _untyped(value: Any, path: Path, problems: Problems) -> Any:
    if value is None:
        return _bad(problems, path, "a value", value, " (an untyped input takes any value but "
                    f"None; write '{path}: str | None' to allow None)")
    return value


def _str() -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        if type(v) is str:
            return v
        return str(v) if isinstance(v, str) else _bad(out, p, "str", v)  # numpy.str_ -> str
    return _exact(check, str)


def _int() -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        if type(v) is int:
            return v
        if isinstance(v, bool) or _is_numpy_bool(v):
            return _bad(out, p, "int", v)
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real) and math.isfinite(v) and float(v).is_integer():
            return int(v)
        why = " (it has a fractional part)" if isinstance(v, numbers.Real) else ""
        return _bad(out, p, "int", v, why)
    return _exact(check, int)


def _float() -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        if type(v) is float:
            return v
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and not _is_numpy_bool(v):
            try:
                return float(v)
            except OverflowError:
                return _bad(out, p, "float", v, " (too large)")
        return _bad(out, p, "float", v)
    return _exact(check, float)


def _bool() -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        if v is True or v is False:
            return v
        return bool(v) if _is_numpy_bool(v) else _bad(out, p, "bool", v)
    return _exact(check, bool)


def _is_numpy_bool(v: Any) -> bool:
    return type(v).__name__ in ("bool_", "bool") and type(v).__module__ == "numpy"


def _typed(name: str, types: tuple, convert: Callable | None = None) -> Callable[[], Checker]:
    def make() -> Checker:
        def check(v: Any, p: Path, out: Problems) -> Any:
            if isinstance(v, types):
                return v if convert is None else convert(v)
            return _bad(out, p, name, v)
        return _exact(check, types[0])
    return make


def _when(name: str, cls: type, exclude: type | None) -> Callable[[], Checker]:
    def make() -> Checker:
        def check(v: Any, p: Path, out: Problems) -> Any:
            if isinstance(v, cls) and not (exclude and isinstance(v, exclude)):
                return v
            if isinstance(v, str):
                try:
                    return cls.fromisoformat(v)
                except ValueError:
                    return _bad(out, p, name, v, " (not an ISO 8601 string)")
            return _bad(out, p, name, v)
        return _exact(check, cls)
    return make


def _none() -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        return v if v is None else _bad(out, p, "None", v)
    return _exact(check, type(None))


_SCALARS: dict[str, Callable[[], Checker]] = {
    "str": _str, "int": _int, "float": _float, "bool": _bool, "None": _none,
    "Any": lambda: _any,
    "bytes": _typed("bytes", (bytes, bytearray), bytes),
    "datetime": _when("datetime", _dt.datetime, None),
    "date": _when("date", _dt.date, _dt.datetime),
}


def _dspy_type(name: str) -> Checker:
    cls = python_scalar(name)

    def check(v: Any, p: Path, out: Problems) -> Any:
        if isinstance(v, cls):
            return v
        try:
            return cls.model_validate(v)
        except Exception as exc:  # pydantic's error: keep its first line only
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return _bad(out, p, name, v, f" ({first})")
    return _exact(check, cls)


def _custom(spec: TypeSpec) -> Checker:
    obj = spec.to_python()
    cls = obj if isinstance(obj, type) else None
    adapter: list = []  # built on first use: [TypeAdapter] or [None] when pydantic cannot

    def check(v: Any, p: Path, out: Problems) -> Any:
        if cls is not None and isinstance(v, cls):
            return v
        if not adapter:
            adapter.append(_type_adapter(obj))
        if adapter[0] is None:
            return _bad(out, p, f"an instance of {spec}", v)
        try:
            return adapter[0].validate_python(v)
        except Exception as exc:  # pydantic's error: keep its first problem only
            return _bad(out, p, str(spec), v, f" ({_first_problem(exc)})")
    return _exact(check, cls) if cls is not None else check


def _first_problem(exc: Exception) -> str:
    try:
        first = exc.errors()[0]  # type: ignore[attr-defined]
    except Exception:
        return str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    where = ".".join(map(str, first.get("loc", ())))
    return f"{where}: {first['msg']}" if where else first["msg"]


def _type_adapter(obj: Any) -> Any:
    import pydantic

    try:
        return pydantic.TypeAdapter(obj)
    except Exception:
        try:
            return pydantic.TypeAdapter(
                obj, config=pydantic.ConfigDict(arbitrary_types_allowed=True))
        except Exception:
            return None


# -- containers and combinators ------------------------------------------------------------------
def _as_items(v: Any) -> list | tuple | None:
    if type(v) is list or type(v) is tuple or isinstance(v, list | tuple):
        return v
    if type(v).__module__ == "numpy" and getattr(v, "ndim", 0) == 1:
        return v.tolist()
    return None


def _sequence(name: str, item: Checker) -> Checker:
    exact = getattr(item, "exact", None)

    def check(v: Any, p: Path, out: Problems) -> Any:
        seq = _as_items(v)
        if seq is None and name == "set" and isinstance(v, set | frozenset):
            seq = list(v)
        if seq is None:
            return _bad(out, p, name, v)
        if item is _any or (exact is not None and all(type(x) is exact for x in seq)):
            items = list(seq)  # a copy: the caller's list is never returned
        else:
            items = [item(x, (p, i), out) for i, x in enumerate(seq)]
        if name == "list":
            return items
        if name == "tuple":
            return tuple(items)
        try:
            return set(items)
        except TypeError:
            return _bad(out, p, "set of hashable items", v)
    return check


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _fixed_tuple(label: str, items: list[Checker]) -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        seq = _as_items(v)
        if seq is None:
            return _bad(out, p, label, v)
        if len(seq) != len(items):
            return _bad(out, p, f"{label} of {_items(len(items))}", v, f" ({_items(len(seq))})")
        return tuple(c(x, (p, i), out) for i, (c, x) in enumerate(zip(items, seq, strict=True)))
    return check


def _dict(key: Checker, value: Checker) -> Checker:
    def check(v: Any, p: Path, out: Problems) -> Any:
        if not isinstance(v, Mapping):
            return _bad(out, p, "dict", v)
        result = {}
        for k, x in v.items():
            bad: Problems = []
            ck = key(k, p, bad)
            if bad:
                out.append((_fmt((p, k)), "bad key: " + bad[0][1]))
            result[ck] = value(x, (p, k), out)
        return result
    return check


def _literal(spec: TypeSpec) -> Checker:
    allowed = {(type(v), v) for v in spec.args}
    label = ", ".join(repr(v) for v in spec.args)

    def check(v: Any, p: Path, out: Problems) -> Any:
        try:
            if (type(v), v) in allowed:
                return v
        except TypeError:  # unhashable value
            pass
        return _bad(out, p, f"one of {label}", v)
    return check


def _union(spec: TypeSpec, members: list[Checker]) -> Checker:
    label = str(spec)
    if len(members) == 2 and spec.args[-1].name == "None" and not hasattr(members[0], "exact"):
        inner = members[0]  # a container: report its item-level problems
        return lambda v, p, out: None if v is None else inner(v, p, out)
    by_type = {m.exact: m for m in reversed(members) if getattr(m, "exact", None) is not None}

    def check(v: Any, p: Path, out: Problems) -> Any:
        member = by_type.get(type(v))
        if member is not None:
            return member(v, p, out)
        for m in members:
            trial: Problems = []
            result = m(v, p, trial)
            if not trial:
                return result
        return _bad(out, p, label, v)
    return check
