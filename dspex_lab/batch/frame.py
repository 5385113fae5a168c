"""Result parts (Arrow tables, one per chunk) -> the output DataFrame and its usage totals.

The output keeps the input rows as they were (same order, same index, same dtypes) and adds
one column per output field holding what DSPy returned (Arrow-backed for strings, numbers,
bools and lists of them; an ``object`` column of the real values -- pydantic models, enums,
dicts, ``dspy.History`` -- otherwise: ``exchange.values``), then ``error``, ``latency_ms``,
``prompt_tokens``, ``completion_tokens``, ``cost``, ``cached`` and the status columns
``status``, ``error_type`` and ``attempts`` (see ``batch.status``). A name that is already
an input column gets the suffix ``_pred`` (outputs) or ``_run`` (bookkeeping), so no input
column is overwritten.

    >>> part = result_part([0], {"answer": ["4"]}, errors=[None], cached=True)
    >>> assemble(batch, ordered([part], ("answer",), 1)).columns.tolist()[:3]
    ['question', 'answer', 'error']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dspex_lab.batch import status as _status
from dspex_lab.batch.inputs import InputBatch
from dspex_lab.batch.spill import ROW
from dspex_lab.exchange import values as _values
from dspex_lab.kinds import CALL_COLUMNS, RESULT_COLUMNS, STATUS_COLUMNS

__all__ = ["META_COLUMNS", "RESULT_COLUMNS", "assemble", "ordered", "part_frame", "result_part",
           "to_arrow_values", "usage_totals", "with_rows"]

META_COLUMNS = (*CALL_COLUMNS, *STATUS_COLUMNS)
"""The bookkeeping columns a chunk returns after its output columns (``cached`` is added by
the kernel: ``kinds.RESULT_COLUMNS``)."""

_META_TYPES = {"error": pa.string(), "latency_ms": pa.float64(), "prompt_tokens": pa.int64(),
               "completion_tokens": pa.int64(), "cost": pa.float64(), "cached": pa.bool_(),
               **_status.TYPES}


def with_rows(table: pa.Table, rows: Sequence[int], cached: bool = False) -> pa.Table:
    """A chunk's result table plus its ``cached`` flag and ``__row__`` numbers."""
    table = table.append_column("cached", pa.array([cached] * table.num_rows, pa.bool_()))
    return table.append_column(ROW, pa.array(rows, pa.int64()))


def result_part(rows: Sequence[int], outputs: dict[str, list[Any]], *,
                errors: Sequence[str | None], cached: bool = False,
                prompt_tokens: Sequence[int] | None = None,
                completion_tokens: Sequence[int] | None = None,
                cost: Sequence[float] | None = None, status: str | None = None,
                error_type: str | None = None, attempts: int | None = 0) -> pa.Table:
    """A result table built in the kernel: cache hits, resumed rows, or rows that errored
    without a call (invalid inputs, circuit open, budget, interrupt). ``status`` (one for
    every row; default ``cached`` or ``ok``/``error`` from ``errors``), ``error_type`` and
    ``attempts`` fill the status columns (``batch.status``)."""
    n = len(rows)
    columns: dict[str, Any] = {name: to_arrow_values(list(values))
                               for name, values in outputs.items()}
    columns["error"] = pa.array(list(errors), pa.string())
    columns["latency_ms"] = pa.array([0.0] * n, pa.float64())
    columns["prompt_tokens"] = pa.array(list(prompt_tokens or [0] * n), pa.int64())
    columns["completion_tokens"] = pa.array(list(completion_tokens or [0] * n), pa.int64())
    columns["cost"] = pa.array(list(cost or [0.0] * n), pa.float64())
    columns["cached"] = pa.array([cached] * n, pa.bool_())
    statuses = status or (_status.CACHED if cached else _status.from_errors(errors))
    columns.update(_status.part_columns(n, statuses, error_type, attempts))
    columns[ROW] = pa.array(list(rows), pa.int64())
    return pa.table(columns)


def ordered(parts: list[pa.Table], output_names: Sequence[str], n_rows: int) -> pa.Table:
    """All parts as one table in row order: output columns, then the bookkeeping columns.
    Parts that are runs of consecutive rows (chunks usually are) are only chained, not
    copied."""
    parts = sorted((p for p in parts if p.num_rows), key=lambda p: p.column(ROW)[0].as_py())
    if parts:  # a column typed differently in two parts is pickled in both: no value changes
        table = pa.concat_tables(_values.unify(parts), promote_options="permissive")
        rows = table.column(ROW).to_numpy()
        if not np.array_equal(rows, np.arange(len(rows))):  # else: in order, nothing copied
            table = table.take(pc.sort_indices(table.column(ROW)))
    else:
        table = pa.table({**{n: pa.array([], pa.string()) for n in output_names},
                          **{k: pa.array([], t) for k, t in _META_TYPES.items()},
                          ROW: pa.array([], pa.int64())})
    if table.num_rows != n_rows:
        raise RuntimeError(f"internal error: {table.num_rows} results for {n_rows} rows")
    extras = [c for c in table.column_names
              if c not in output_names and c not in _META_TYPES and c != ROW]
    names = [*[n for n in output_names if n in table.column_names], *extras]
    for name in output_names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
            names.append(name)
    columns = {name: table.column(name) for name in names}
    for meta, typ in _META_TYPES.items():
        columns[meta] = table.column(meta).cast(typ)
    return pa.table(columns)


def assemble(batch: InputBatch, results: pa.Table) -> Any:
    """The output DataFrame: the input rows plus the ``ordered`` result columns."""
    import pandas as pd

    from dspex_lab.exchange import to_pandas

    base = batch.source if isinstance(batch.source, pd.DataFrame) else to_pandas(batch.source)
    frame = to_pandas(results)
    taken = {str(c) for c in base.columns}
    renamed = {}
    for name in frame.columns:
        new = name
        if name in taken:
            new = f"{name}_run" if name in _META_TYPES else f"{name}_pred"
        renamed[name] = new
        taken.add(new)
    frame = frame.rename(columns=renamed)
    frame.index = base.index
    out = pd.concat([base, frame], axis=1) if len(base.columns) else frame
    out.attrs = {}
    return out


def part_frame(batch: InputBatch, part: pa.Table, rows: Any) -> Any:
    """One finished part as a DataFrame for ``on_part``: the rows' input fields, then the
    part's result columns (an output named like an input gets ``_pred``), indexed like the
    data (positions for an Arrow table or records)."""
    import pandas as pd

    from dspex_lab.exchange import to_pandas

    inputs = batch.table.take(pa.array(rows))
    taken = set(inputs.column_names)
    names = [f"{n}_pred" if n in taken else n for n in part.column_names if n != ROW]
    columns = [part.column(n) for n in part.column_names if n != ROW]
    frame = to_pandas(pa.Table.from_arrays([*inputs.columns, *columns],
                                           names=[*inputs.column_names, *names]))
    source = batch.source
    frame.index = source.index[rows] if isinstance(source, pd.DataFrame) else pd.Index(rows)
    return frame


def usage_totals(results: pa.Table, wall_s: float, **extra: Any) -> dict[str, Any]:
    """Totals over ``ordered`` results: rows; rows by status (``errors``: failed rows, i.e.
    ``error`` + ``invalid``; ``ok``, ``cached``, ``invalid``, ``not_run``: see
    ``batch.status``); tokens, cost, wall time and rows/s."""
    def total(name: str) -> Any:
        value = pc.sum(results.column(name)).as_py()
        return value or 0

    rows = results.num_rows
    prompt, completion = int(total("prompt_tokens")), int(total("completion_tokens"))
    by_status = _status.totals(results.column("status"))
    finished = rows - by_status["not_run"]
    return {
        "rows": rows,
        **by_status,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": float(total("cost")),
        "wall_s": wall_s,
        "rows_per_s": finished / wall_s if wall_s > 0 else 0.0,  # rows not run: not counted
        **extra,
    }


def to_arrow_values(values: list[Any]) -> pa.Array:
    """An Arrow array of output values, exactly as DSPy returned them: typed Arrow for
    strings, ints, floats, bools and lists of one of those, else pickled values (pydantic
    models, enums, dicts, ``dspy.History``...; see ``exchange.values``)."""
    return _values.to_arrow_values(values)
