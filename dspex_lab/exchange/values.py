"""Python values <-> Arrow columns, exactly: typed Arrow where it is exact, pickled otherwise.

    >>> column = to_arrow_values([Item(name="a"), None])      # pydantic: a pickled column
    >>> is_pickled(column.type), column.to_pylist()
    (True, [Item(name='a'), None])
    >>> to_arrow_values(["a", None]).type, to_arrow_values([[1, 2], []]).type
    (DataType(string), ListType(list<item: int64>))

What ``module(**row)`` returns must come back as the same Python values and types, so a
column is typed Arrow only when reading it back gives exactly what went in:

* every value that is not None has the same exact type: ``str``, ``bool``, ``int`` (within
  int64), ``float`` or ``bytes`` (subclasses such as a ``str`` Enum are not plain values);
* or every value is a ``list`` whose items (None allowed) are all one such type.

Anything else -- pydantic models, enums, dicts (Arrow would make them a struct, adding every
other row's keys), tuples, nested lists, ``dspy.History``, dataclasses, a column mixing
types -- becomes a *pickled* column: the extension type ``dspex.pickle`` (storage
``large_binary``; in IPC and spill files the field metadata says
``ARROW:extension:name = dspex.pickle``), one pickle per value, None as null. Its scalars
unpickle in ``as_py()``, so ``to_pylist()`` (what workers hand to DSPy, what the cache
stores) gives the real objects, and ``exchange.to_pandas`` turns it into an ``object``
column of them. Values are pickled by reference when that round-trips (a class importable
where it is read), else with cloudpickle (classes defined in a notebook or a function).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from dspex_lab.exchange.objects import dumps, loads

__all__ = ["PICKLED", "dumps", "exact_array", "exact_type", "is_missing_pandas",
           "is_pickled", "loads", "pickled_array", "portable", "to_arrow_values", "unify"]

_SCALARS = {str: pa.string(), bool: pa.bool_(), int: pa.int64(), float: pa.float64(),
            bytes: pa.binary()}
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


class _PickledScalar(pa.ExtensionScalar):
    """A pickled value: ``as_py()`` is the value itself."""

    def as_py(self, **_: Any) -> Any:
        blob = self.value
        if blob is None:
            return None
        buffer = blob.as_buffer()
        _check(buffer)
        return loads(buffer)


def _check(buffer: Any) -> None:
    """A corrupt pickle (a damaged spill file or IPC stream) fails here, before
    ``pickle.loads`` can crash or allocate without bound (``protocol.check_pickle``)."""
    from dspex_lab.errors import DataError, ProtocolError
    from dspex_lab.workers.protocol import check_pickle

    try:
        check_pickle(buffer)
    except ProtocolError as exc:
        raise DataError(
            f"A value of a pickled column (dspex.pickle) is corrupt ({exc}); the spill file "
            "or Arrow stream it was read from is damaged: delete it (or run with "
            "resume=False) and compute the rows again."
        ) from None


class PickledType(pa.ExtensionType):
    """Arrow type of a column of pickled Python values (``dspex.pickle``)."""

    def __init__(self) -> None:
        super().__init__(pa.large_binary(), "dspex.pickle")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes
                                  ) -> PickledType:
        return cls()

    def __arrow_ext_scalar_class__(self) -> type:
        return _PickledScalar

    def __hash__(self) -> int:  # types are compared in sets (``unify``)
        return hash("dspex.pickle")


PICKLED = PickledType()
"""The one instance of the pickled-column type."""

with contextlib.suppress(pa.ArrowKeyError):  # registered already (a reloaded module)
    pa.register_extension_type(PICKLED)


def is_pickled(arrow_type: pa.DataType) -> bool:
    """True for the ``dspex.pickle`` type (also an instance of another copy of the class)."""
    return isinstance(arrow_type, PickledType) or (
        isinstance(arrow_type, pa.BaseExtensionType)
        and arrow_type.extension_name == "dspex.pickle")


def pickled_array(values: Sequence[Any], missing: Any = None) -> pa.ExtensionArray:
    """A pickled column of ``values``; None (or what ``missing(value)`` says) is null."""
    is_missing = missing or (lambda v: v is None)
    blobs = [None if is_missing(v) else dumps(v) for v in values]
    return pa.ExtensionArray.from_storage(PICKLED, pa.array(blobs, pa.large_binary()))


def exact_type(values: Sequence[Any], missing: Any = None) -> pa.DataType | None:
    """The Arrow type that gives back exactly ``values``, or None when there is none (see
    the module docstring). ``missing(value)``: values stored as null (default: None)."""
    is_missing = missing or (lambda v: v is None)
    kinds = {type(v) for v in values if not is_missing(v)}
    if not kinds:
        return pa.null()
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind in _SCALARS:
        if kind is int and not _fits_int64(v for v in values if not is_missing(v)):
            return None
        return _SCALARS[kind]
    if kind is not list:
        return None
    items = {type(i) for v in values if not is_missing(v) for i in v if i is not None}
    if len(items) > 1 or not items <= _SCALARS.keys():
        return None
    item = items.pop() if items else None
    if item is int and not _fits_int64(i for v in values if not is_missing(v) for i in v
                                       if i is not None):
        return None
    return pa.list_(_SCALARS[item] if item else pa.null())


def _fits_int64(numbers: Any) -> bool:
    return all(_INT64[0] <= n <= _INT64[1] for n in numbers)


def exact_array(values: Sequence[Any], missing: Any = None) -> pa.Array | None:
    """The typed Arrow array of ``values`` (``exact_type``), or None when there is none."""
    arrow_type = exact_type(values, missing)
    if arrow_type is None:
        return None
    if missing is not None:
        values = [None if missing(v) else v for v in values]
    return pa.array(values, arrow_type)


def to_arrow_values(values: Sequence[Any]) -> pa.Array:
    """The Arrow column for ``values``: exact typed Arrow, else pickled (never a repr)."""
    values = list(values)
    array = exact_array(values)
    return array if array is not None else pickled_array(values)


def unify(tables: Sequence[pa.Table]) -> list[pa.Table]:
    """``tables`` made concatenable without changing a value: a column typed differently in
    different tables (``string`` in one, pickled in another; ``int64`` and ``double``) is
    pickled in all of them, and all-null / empty-list columns are cast to the others' type.
    Tables that agree already are returned as they are (nothing is copied)."""
    tables = list(tables)
    names = list(dict.fromkeys(n for t in tables for n in t.column_names))
    for name in names:
        where = [i for i, t in enumerate(tables) if name in t.column_names]
        types = {tables[i].schema.field(name).type for i in where}
        if len(types) < 2:
            continue
        real = {t for t in types if not _vague(t)} or {
            t for t in types if not pa.types.is_null(t)}  # e.g. nulls and empty lists
        target = real.pop() if len(real) == 1 else None
        if target is not None and not all(_castable(t, target) for t in types):
            target = None
        for i in where:
            table = tables[i]
            column = table.column(name)
            if column.type == target:
                continue
            if target is not None:
                new = column.cast(target)
            elif is_pickled(column.type):
                continue
            else:
                new = pickled_array(column.to_pylist())
            index = table.column_names.index(name)
            tables[i] = table.set_column(index, pa.field(name, new.type), new)
    return tables


def portable(table: pa.Table) -> pa.Table:
    """``table`` with its pickled values pickled again here, by reference where possible.

    A worker pickles a notebook's classes by value (it cannot name them); read back after a
    kernel restart, those would be new classes, not the ones the notebook defines again. The
    kernel can pickle them by name (``__main__.Item``), so what it keeps on disk reads back
    as the notebook's classes."""
    for i, field in enumerate(table.schema):
        if is_pickled(field.type):
            table = table.set_column(i, field, pickled_array(table.column(i).to_pylist()))
    return table


def _vague(arrow_type: pa.DataType) -> bool:
    """A type that says nothing about the values: all null, or lists that are all empty."""
    return pa.types.is_null(arrow_type) or (
        pa.types.is_list(arrow_type) and pa.types.is_null(arrow_type.value_type))


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    if source == target or pa.types.is_null(source):
        return True
    return _vague(source) and pa.types.is_list(target)


def is_missing_pandas(value: Any) -> bool:
    """What pandas and Arrow treat as missing in an object column: None, NaN, NA, NaT."""
    if value is None:
        return True
    if type(value) is float:
        return math.isnan(value)
    kind = type(value).__name__
    return kind in ("NAType", "NaTType")
