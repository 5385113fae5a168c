"""DataFrame <-> Arrow: the one place where tables change representation.

    >>> import pandas as pd
    >>> table = to_arrow(pd.DataFrame({"q": ["hi", "yo"], "n": [1, 2]}))
    >>> to_pandas(ipc_to_table(table_to_ipc(table))).dtypes.tolist()
    [<StringDtype(na_value=nan)>, int64[pyarrow]]
    >>> [len(part) for part in split(table, 1)]
    [1, 1]

Decisions:

* The pandas index: a default ``RangeIndex`` is stored as metadata only (no column); any other
  index is kept as a column and restored by ``to_pandas``.
* Values come back exactly: an ``object`` column (or a list/dict of Python values) is typed
  Arrow only when reading it back gives the same values and types -- strings, ints, floats,
  bools, lists of one of those (see ``exchange.values``). Anything else (dicts, which Arrow
  would turn into structs with every other row's keys; pydantic models, enums,
  ``dspy.History``, columns mixing types) becomes a pickled column, and ``to_pandas`` gives
  it back as an ``object`` column of the real objects. Nothing is turned into text.
* Column names: Arrow's are strings; pandas labels that are not (``0``) become ``"0"``
  (``exchange.objects`` pickles such frames instead, so that they travel exactly).
* ``to_pandas(arrow_dtypes=True)`` gives Arrow-backed columns: strings as pandas' ``str``
  dtype (itself Arrow-backed), dictionaries as ``category``, pickled values and columns of
  nothing but None as ``object``, everything else ``pd.ArrowDtype`` (where a None -- or a
  row without a value -- reads as pandas' missing value, ``NA``). ``arrow_dtypes=False``
  restores the dtypes recorded when the table was made from a DataFrame (exact round trip),
  numpy defaults otherwise.
* Tables that cannot be made (not table-like, duplicate names, columns of different lengths)
  raise ``DataError`` naming the problem and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dspex_lab.errors import DataError
from dspex_lab.exchange.values import (
    PICKLED,
    exact_array,
    exact_type,
    is_missing_pandas,
    is_pickled,
    pickled_array,
)

__all__ = ["ipc_to_table", "split", "table_to_ipc", "to_arrow", "to_pandas"]

_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def to_arrow(data: Any, columns: list[str] | None = None) -> pa.Table:
    """Turn table-like ``data`` into a ``pa.Table`` (zero-copy where Arrow allows).

    Accepts a pandas DataFrame or Series, ``pa.Table``/``RecordBatch``/``RecordBatchReader``,
    anything with ``__arrow_c_stream__`` (polars, duckdb), a list of row dicts, or a dict of
    columns. ``columns`` selects and orders columns. Example::

        to_arrow([{"q": "hi"}, {"q": "yo", "n": 2}])   # q: string, n: int64 (null in row 0)
    """
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        table = _from_pandas(data if columns is None else _select_df(data, columns))
        return table
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, pa.RecordBatchReader):
        table = data.read_all()
    elif hasattr(data, "__arrow_c_stream__"):
        table = pa.RecordBatchReader.from_stream(data).read_all()
    elif isinstance(data, list) and all(isinstance(row, Mapping) for row in data):
        table = _from_rows(data, columns)
    elif isinstance(data, Mapping):
        table = _from_columns(data)
    else:
        raise DataError(
            f"Cannot turn a {type(data).__name__} into an Arrow table; pass a pandas DataFrame, "
            "a pyarrow Table/RecordBatch, an object with __arrow_c_stream__ (polars, duckdb), "
            "a list of row dicts or a dict of columns.")
    return table if columns is None else _select_table(table, columns)


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    if df.columns.has_duplicates:
        dup = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise DataError(f"This DataFrame cannot become an Arrow table: the column name(s) "
                        f"{', '.join(map(repr, dup))} appear more than once. Rename or drop "
                        "the duplicates first, e.g. df.loc[:, ~df.columns.duplicated()].")
    pickled = {i: df.iloc[:, i] for i in range(df.shape[1]) if _needs_pickle(df.iloc[:, i])}
    if pickled:  # placeholders of nulls: pyarrow still writes the pandas metadata for them
        df = df.copy(deep=False)
        for i in pickled:
            df.isetitem(i, pd.Series([None] * len(df), index=df.index, dtype=object))
    try:
        table = pa.Table.from_pandas(df, preserve_index=None)
    except _CONVERSION_ERRORS as exc:  # e.g. an index Arrow cannot hold
        raise DataError(f"This DataFrame cannot become an Arrow table ({exc}); convert the "
                        "offending column or index first (e.g. .astype(str)).") from exc
    for i, column in pickled.items():
        array = _pickled(table.column_names[i], column.tolist(), is_missing_pandas)
        table = table.set_column(i, pa.field(table.column_names[i], PICKLED), array)
    return table


def _pickled(name: Any, values: list, missing: Any = None) -> pa.Array:
    try:
        return pickled_array(values, missing=missing)
    except TypeError as exc:
        raise DataError(f"Column {name!r} holds a value that cannot be pickled, so it cannot "
                        f"travel to a worker: {exc} Convert the column to plain values "
                        "first.") from exc


def _needs_pickle(column: pd.Series) -> bool:
    """An object column whose values Arrow cannot give back exactly."""
    if column.dtype != object:
        return False
    return exact_type(column.tolist(), missing=is_missing_pandas) is None


def _from_rows(rows: list[Mapping], columns: list[str] | None) -> pa.Table:
    if columns is None:
        names = list(dict.fromkeys(key for row in rows for key in row))
    else:
        names = list(columns)
    return _from_columns({name: [row.get(name) for row in rows] for name in names})


def _from_columns(data: Mapping) -> pa.Table:
    arrays = {}
    for name, values in data.items():
        if not isinstance(name, str):
            raise DataError(f"Column names must be strings here; got {name!r} "
                            f"({type(name).__name__}). Rename it, e.g. str({name!r}), or "
                            "pass a pandas DataFrame (any column labels).")
        if isinstance(values, list | tuple):
            values = list(values)
            exact = exact_array(values)
            arrays[name] = exact if exact is not None else _pickled(name, values)
            continue
        try:
            arrays[name] = pa.array(values)
        except _CONVERSION_ERRORS as exc:
            raise DataError(f"Column {name!r} cannot become an Arrow column ({exc}); pass "
                            "its values as a list.") from exc
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{n}={len(a)}" for n, a in arrays.items())
        raise DataError(f"All columns must have the same length; got {sizes}.")
    return pa.table(arrays)


def _select_df(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    _check_columns(list(df.columns), columns)
    return df[list(columns)]


def _select_table(table: pa.Table, columns: list[str]) -> pa.Table:
    _check_columns(table.column_names, columns)
    return table.select(list(columns))


def _check_columns(available: list, wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DataError(f"Column(s) {missing} not found; the data has {available}.")


def to_pandas(table: pa.Table | pa.RecordBatch, arrow_dtypes: bool = True) -> pd.DataFrame:
    """Convert an Arrow table to a DataFrame, restoring a pandas index stored in the table.

    ``arrow_dtypes=True`` gives Arrow-backed dtypes (see the module docstring); ``False``
    gives back the exact dtypes of the DataFrame the table was made from. Example::

        df = to_pandas(ipc_to_table(payload))
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise DataError(f"to_pandas needs a pyarrow Table or RecordBatch, not "
                        f"{type(table).__name__}; call to_arrow(data) first.")
    meta = _pandas_metadata(table)
    pickled = [i for i, f in enumerate(table.schema) if is_pickled(f.type)]
    plain = table
    for i in pickled:  # decoded below: pandas needs no copy of the pickles
        plain = plain.set_column(i, table.column_names[i], pa.nulls(table.num_rows))
    if arrow_dtypes:
        frame = plain.to_pandas(types_mapper=_arrow_dtype, split_blocks=True)
    else:
        frame = plain.to_pandas(types_mapper=_recorded_arrow_dtypes(plain, meta),
                                split_blocks=True)
        frame = _restore_object_strings(frame, plain, meta)
    return _decode_pickled(frame, table, meta, pickled) if pickled else frame


def _arrow_dtype(arrow_type: pa.DataType) -> Any:
    if pa.types.is_dictionary(arrow_type) or pa.types.is_null(arrow_type):
        return None  # category; all values None: an object column of None
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow", na_value=float("nan"))
    if isinstance(arrow_type, pa.BaseExtensionType):
        return None
    return pd.ArrowDtype(arrow_type)


def _pandas_metadata(table: pa.Table) -> dict:
    """The pandas metadata pyarrow stored in the table ({} when there is none or it is bad)."""
    raw = (table.schema.metadata or {}).get(b"pandas")
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) and isinstance(meta.get("columns"), list) else {}


def _recorded(meta: dict) -> dict[str, str]:
    return {c.get("field_name", c.get("name")): str(c.get("numpy_type", ""))
            for c in meta.get("columns", []) if isinstance(c, dict)}


def _recorded_arrow_dtypes(table: pa.Table, meta: dict) -> Any:
    """A types_mapper restoring ``pd.ArrowDtype`` columns whose type pandas cannot parse back.

    pyarrow records ``list<item: string>[pyarrow]`` in the pandas metadata and then fails to
    read it; mapping those Arrow types explicitly avoids the bug.
    """
    recorded = _recorded(meta)
    arrow_backed = {f.type for f in table.schema if recorded.get(f.name, "").endswith("[pyarrow]")}
    if not arrow_backed:
        return None
    return lambda t: pd.ArrowDtype(t) if t in arrow_backed else None


def _restore_object_strings(frame: pd.DataFrame, table: pa.Table, meta: dict) -> pd.DataFrame:
    """Strings that were an ``object`` column stay ``object`` (pandas 3 would make them ``str``)."""
    recorded = _recorded(meta)
    index_fields = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    fields = [f for f in table.schema if f.name not in index_fields]
    if len(fields) != frame.shape[1]:
        return frame
    for position, field in enumerate(fields):
        if recorded.get(field.name) == "object" and (
                pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            values = table.column(field.name).to_numpy(zero_copy_only=False)
            frame.isetitem(position, pd.Series(values, index=frame.index, dtype=object))
    return frame


def _decode_pickled(frame: pd.DataFrame, table: pa.Table, meta: dict, pickled: list[int]
                    ) -> pd.DataFrame:
    """Pickled columns as ``object`` columns of the values themselves."""
    index_fields = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    data_fields = [i for i, f in enumerate(table.schema) if f.name not in index_fields]
    by_position = len(data_fields) == frame.shape[1]  # else: metadata of another shape
    for i in pickled:
        name = table.schema[i].name
        if by_position and i in data_fields:
            at = data_fields.index(i)
        elif not by_position and list(frame.columns).count(name) == 1:
            at = frame.columns.get_loc(name)
        else:
            continue
        values = np.empty(table.num_rows, dtype=object)
        for row, value in enumerate(table.column(i).to_pylist()):
            values[row] = value
        frame.isetitem(at, pd.Series(values, index=frame.index, dtype=object))
    return frame


def table_to_ipc(table: pa.Table | pa.RecordBatch) -> pa.Buffer:
    """Serialize to the Arrow IPC *stream* format in one pre-sized buffer (no reallocation).

        >>> ipc_to_table(table_to_ipc(pa.table({"x": [1]}))).num_rows
        1
    """
    size = ipc_size(table)
    buffer = pa.allocate_buffer(size)
    write_ipc(table, buffer)
    return buffer


def ipc_size(table: pa.Table | pa.RecordBatch) -> int:
    """Exact size in bytes of ``table`` in the IPC stream format (computed without copying)."""
    sink = pa.MockOutputStream()
    _write(table, sink)
    return sink.size()


def write_ipc(table: pa.Table | pa.RecordBatch, target: Any) -> None:
    """Write ``table`` as an IPC stream into ``target``: a writable buffer of ``ipc_size``
    bytes, or a binary file (written from its current position, left open)."""
    if hasattr(target, "write"):
        _write(table, pa.PythonFile(target, mode="w"))
        return
    target = target if isinstance(target, pa.Buffer) else pa.py_buffer(target)
    _write(table, pa.FixedSizeBufferWriter(target))


def _write(table: pa.Table | pa.RecordBatch, sink: Any) -> None:
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)


def ipc_to_table(buf: Any) -> pa.Table:
    """Read an IPC stream (bytes, memoryview or ``pa.Buffer``) without copying its data.

    Raises ``ValueError`` naming the problem when ``buf`` is not a valid IPC stream.
    """
    source = buf if isinstance(buf, pa.Buffer) else pa.py_buffer(buf)
    try:
        table = pa.ipc.open_stream(source).read_all()
        table.validate()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"These {source.size} bytes are not a valid Arrow IPC stream: "
                         f"{exc}.") from exc
    return table


def split(table: Any, rows_per_batch: int) -> list[pa.Table]:
    """Cut ``table`` (anything ``to_arrow`` accepts) into zero-copy slices of at most N rows.

        >>> [t.num_rows for t in split(pa.table({"x": range(5)}), 2)]
        [2, 2, 1]

    An empty table gives an empty list.
    """
    if not isinstance(rows_per_batch, int) or rows_per_batch < 1:
        raise ValueError(f"rows_per_batch must be a positive integer, not {rows_per_batch!r}.")
    if not isinstance(table, pa.Table):
        table = to_arrow(table)
    return [table.slice(start, rows_per_batch)
            for start in range(0, table.num_rows, rows_per_batch)]
