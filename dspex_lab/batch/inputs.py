"""The rows a run reads: data -> an Arrow table of input fields, checked before any LM call.

    >>> batch = prepare_inputs(as_program("question -> answer"),
    ...                        [{"q": "2 + 2?"}], columns={"question": "q"})
    >>> batch.table.column_names, batch.mapping
    (['question'], {'question': 'q'})

Every input field must map to a column (by name, or through ``columns={"field": "col"}``;
a column label need not be a string: ``columns={"question": 0}``, or ``"0"``); a missing or
ambiguous (duplicated) one is a ``ValidationError`` naming the field, listing the columns and
saying what to do. Data that is not table-like is a ``DataError``. Columns of any Python
objects are accepted and travel exactly (``exchange.values``: pickled where Arrow would
change them), so the worker's ``module(**row)`` sees the values of the data. Each row is
then validated (and coerced) with the signature; a row that does not fit gets its error
without an LM call. Cache keys are the same as for single calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dspex_lab.cache import cache_digest
from dspex_lab.errors import DataError, ValidationError
from dspex_lab.programs import Program

__all__ = ["InputBatch", "RowKeys", "input_rows", "prepare_inputs", "row_keys"]

_KEY_BATCH = 2048


@dataclass
class InputBatch:
    """The source data (kept for the output frame), the input-field table sent to workers,
    and how fields map to columns."""

    source: Any
    table: pa.Table
    mapping: dict[str, Any]  # field -> the data's column label (a str, or e.g. 0)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def prepare_inputs(program: Program, data: Any, columns: Mapping[str, Any] | None = None
                   ) -> InputBatch:
    """Map the program's input fields onto ``data``'s columns (see the module docstring)."""
    import pandas as pd

    from dspex_lab.exchange import to_arrow

    columns = _columns_option(columns)
    source = data.to_frame() if isinstance(data, pd.Series) else data
    if isinstance(source, pd.DataFrame):
        labels = list(source.columns)
    else:
        source = to_arrow(source)  # DataError for data that is not table-like
        labels = list(source.column_names)
    fields = input_fields(program, [str(c) for c in labels])
    positions = _resolve(program, fields, columns, labels)
    mapping = {name: labels[i] for name, i in positions.items()}
    if isinstance(source, pd.DataFrame):
        picked = source.iloc[:, list(positions.values())].set_axis(list(positions), axis=1)
        table = _mark_missing(to_arrow(picked).select(list(positions)), picked)
    else:
        table = pa.table({name: source.column(i) for name, i in positions.items()})
    return InputBatch(source, table, mapping)


def input_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows a worker hands to ``module(**row)``: what ``df.to_dict("records")`` gives
    for the same DataFrame -- Python scalars, ``pd.Timestamp`` for datetime columns (not
    ``datetime.datetime``), NaN or NaT where the DataFrame has them, None where it has None.

    >>> input_rows(pa.table({"t": pa.array([0], pa.timestamp("s"))}))
    [{'t': Timestamp('1970-01-01 00:00:00')}]
    """
    import pandas as pd

    rows = table.to_pylist()
    for i, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            stamps = table.column(i).to_pandas()
            for row, stamp in zip(rows, stamps, strict=True):
                row[column.name] = None if stamp is pd.NaT else stamp
    _restore_missing(rows, table.schema)
    return rows


def _restore_missing(rows: list[dict[str, Any]], schema: pa.Schema) -> list[str]:
    """Put the DataFrame's own missing values (NaN, NaT) back where Arrow holds a null;
    returns the names of the columns where it did."""
    import pandas as pd

    restored = []
    for column in schema:
        marker = (column.metadata or {}).get(_MISSING)
        if marker is None:
            continue
        missing = pd.NaT if marker == b"NaT" else float("nan")
        for row in rows:
            if row[column.name] is None:
                row[column.name] = missing
        restored.append(column.name)
    return restored


_MISSING = b"dspex_missing"


def _mark_missing(table: pa.Table, frame: Any) -> pa.Table:
    """Note on each column whose missing values ``df.to_dict("records")`` gives as NaN (float
    and pandas ``str`` columns, object columns of NaN) or NaT that it does, so ``input_rows``
    hands ``forward`` those and not None (Arrow keeps one null)."""
    import pandas as pd

    fields = list(table.schema)
    changed = False
    for i in range(table.num_columns):
        series = frame.iloc[:, i]
        mask = series.isna().to_numpy()
        if not mask.any():
            continue
        values = [v for v, m in zip(series.tolist(), mask, strict=True) if m]
        if all(v is pd.NaT for v in values):
            marker = b"NaT"
        elif all(isinstance(v, float) for v in values):
            marker = b"nan"
        else:
            continue
        fields[i] = fields[i].with_metadata({**(fields[i].metadata or {}), _MISSING: marker})
        changed = True
    if not changed:
        return table
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, table.schema.metadata))


def _columns_option(columns: Any) -> dict[str, Any]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise DataError(f"columns= maps input fields to columns of the data, e.g. "
                        f"{{'question': 'q'}}; got a {type(columns).__name__} ({columns!r}).")
    return dict(columns)


def input_fields(program: Program, available: list[str]) -> list[str]:
    """The program's input field names; for a module without a signature, its ``forward``
    parameters (all columns when it takes ``**kwargs``)."""
    optional = [n for n in program.optional_inputs if n in available]
    if program.input_names or optional:  # (a forward's defaulted parameters: if present)
        return [*program.input_names, *optional]
    forward = getattr(type(program.module), "forward", None)  # not the instance: DSPy warns
    if forward is None:
        return list(available)
    try:
        params = list(inspect.signature(forward).parameters.values())[1:]  # without self
    except (TypeError, ValueError):
        return list(available)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return list(available)
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _resolve(program: Program, fields: list[str], columns: dict[str, Any], labels: list
             ) -> dict[str, int]:
    """Each input field's column position in the data. A column is found by its label
    (``0``, ``"q"``), or by the label's text (``"0"`` for the label ``0``) when no label is
    equal; a label that names two columns is ambiguous. Every problem is reported at once
    (``ValidationError``)."""
    problems: list[tuple[str, str]] = []
    shown = ", ".join(repr(c) for c in labels) or "(none)"
    for name in columns:
        if name not in fields:
            problems.append((str(name), f"columns= maps {name!r}, which is not an input field "
                                        f"of {program!r}; its inputs are {', '.join(fields)}."))
    positions: dict[str, int] = {}
    for name in fields:
        col = columns.get(name, name)
        found = _find(col, labels)
        if len(found) == 1:
            positions[name] = found[0]
            continue
        if len(found) > 1:
            hint = (f"the data has {len(found)} columns named {col!r}; rename or drop the "
                    "duplicates (e.g. df.loc[:, ~df.columns.duplicated()])")
        elif name in columns:
            hint = f"columns= maps it to {col!r}, but the data has no such column"
        else:
            hint = (f"the data has no column {col!r}; map it with columns="
                    f"{{{name!r}: '<column>'}}")
        problems.append((name, f"{hint}. Available columns: {shown}."))
    if problems:
        raise ValidationError(problems, what="input columns")
    return positions


def _find(col: Any, labels: list) -> list[int]:
    """Positions of the columns ``col`` names: equal labels, else labels whose text it is."""
    try:
        found = [i for i, label in enumerate(labels)
                 if type(label) is type(col) and label == col]
        if not found:
            found = [i for i, label in enumerate(labels) if label == col]
    except (TypeError, ValueError):  # labels that do not compare (arrays)
        found = []
    if not found and isinstance(col, str):
        found = [i for i, label in enumerate(labels) if str(label) == col]
    return found


class RowKeys(Sequence):
    """Every row's cache key, packed: 32 bytes a row (not a 113-byte ``str``); ``keys[i]`` is
    the hex key, or None for a row whose inputs do not fit the signature."""

    def __init__(self, digests: np.ndarray, valid: np.ndarray) -> None:
        self.digests = digests
        self.valid = valid

    def __len__(self) -> int:
        return len(self.valid)

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, int | np.integer):
            raise TypeError("RowKeys takes one row number at a time")
        return self.digests[i].tobytes().hex() if self.valid[i] else None


def _validated(sig: Any, row: dict[str, Any], restored: list[str]) -> dict[str, Any]:
    """``sig.validate_inputs(row)``; a NaN that does not fit its field (``x: str | None``)
    is checked as the missing value it is (None). Plain DSPy gets the DataFrame's NaN. In an
    untyped input a missing value is None, an invalid row (see docs/concepts/conformance)."""
    untyped = [f.name for f in sig.inputs if not f.typed and _is_nan(row.get(f.name))]
    candidate = {**row, **dict.fromkeys(untyped)} if untyped else row
    while True:
        try:
            checked = sig.validate_inputs(candidate)
        except ValidationError as exc:
            misfits = [n for n in restored if _is_nan(candidate.get(n)) and f"- {n}:" in str(exc)]
            if not misfits:
                raise
            candidate = {**candidate, **dict.fromkeys(misfits)}
            continue
        return checked if candidate is row else {**row, **checked, **_nans(row, checked)}


def _nans(row: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
    """The row's NaNs that validation checked as None (the key keeps the NaN)."""
    return {n: v for n, v in row.items() if _is_nan(v) and checked.get(n) is None}


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def row_keys(program: Program, table: pa.Table, lm_key: str, *, adapter: str | None,
             temperature: float | None) -> tuple[RowKeys, dict[int, str]]:
    """Each row's cache key (the key single calls use), and the rows whose inputs do not fit
    the signature (row -> ``ValidationError: ...``; their key is None)."""
    sig = program.signature
    n = table.num_rows
    digests = np.zeros((n, 32), dtype=np.uint8)
    valid = np.ones(n, dtype=bool)
    invalid: dict[int, str] = {}
    i = 0
    for batch in table.to_batches(_KEY_BATCH):
        rows = batch.to_pylist()
        restored = _restore_missing(rows, batch.schema)  # NaN as the worker will pass it
        for row in rows:
            if sig is not None:
                try:
                    row = _validated(sig, row, restored)
                except ValidationError as exc:
                    invalid[i] = f"ValidationError: {exc}"
                    valid[i] = False
                    i += 1
                    continue
            digests[i] = np.frombuffer(cache_digest(program.key, row, lm_key, adapter=adapter,
                                                    temperature=temperature), np.uint8)
            i += 1
    return RowKeys(digests, valid), invalid
