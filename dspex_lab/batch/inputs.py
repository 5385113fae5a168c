"""The rows a run reads: data -> an Arrow table of input fields, checked before any LM call.

    >>> batch = prepare_inputs(as_program("question -> answer"),
    ...                        [{"q": "2 + 2?"}], columns={"question": "q"})
    >>> batch.table.column_names, batch.mapping
    (['question'], {'question': 'q'})

Every input field must map to a column (by name, or through ``columns={"field": "col"}``);
a missing one is a ``ValidationError`` naming the field, listing the columns and suggesting
``columns=``. Each row is then validated (and coerced) with the signature; a row that does not
fit gets its error without an LM call. Cache keys are the same as for single calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dspex_lab.cache import cache_digest
from dspex_lab.errors import ValidationError
from dspex_lab.programs import Program

__all__ = ["InputBatch", "RowKeys", "prepare_inputs", "row_keys"]

_KEY_BATCH = 2048


@dataclass
class InputBatch:
    """The source data (kept for the output frame), the input-field table sent to workers,
    and how fields map to columns."""

    source: Any
    table: pa.Table
    mapping: dict[str, str]

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def prepare_inputs(program: Program, data: Any, columns: Mapping[str, str] | None = None
                   ) -> InputBatch:
    """Map the program's input fields onto ``data``'s columns (see the module docstring)."""
    import pandas as pd

    from dspex_lab.exchange import to_arrow

    columns = dict(columns or {})
    source = data.to_frame() if isinstance(data, pd.Series) else data
    if isinstance(source, pd.DataFrame):
        available = [str(c) for c in source.columns]
    else:
        source = to_arrow(source)
        available = list(source.column_names)
    fields = input_fields(program, available)
    _check_mapping(program, fields, columns, available)
    mapping = {name: columns.get(name, name) for name in fields}
    wanted = list(dict.fromkeys(mapping.values()))
    table = to_arrow(source, columns=wanted) if isinstance(source, pd.DataFrame) else source
    table = pa.table({name: table.column(col) for name, col in mapping.items()})
    return InputBatch(source, table, mapping)


def input_fields(program: Program, available: list[str]) -> list[str]:
    """The program's input field names; for a module without a signature, its ``forward``
    parameters (all columns when it takes ``**kwargs``)."""
    if program.input_names:
        return list(program.input_names)
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


def _check_mapping(program: Program, fields: list[str], columns: dict[str, str],
                   available: list[str]) -> None:
    problems: list[tuple[str, str]] = []
    shown = ", ".join(repr(c) for c in available) or "(none)"
    for name in columns:
        if name not in fields:
            problems.append((name, f"columns= maps {name!r}, which is not an input field of "
                                   f"{program!r}; its inputs are {', '.join(fields)}."))
    for name in fields:
        col = columns.get(name, name)
        if col not in available:
            if name in columns:
                hint = f"columns= maps it to {col!r}, but the data has no such column"
            else:
                hint = (f"the data has no column {col!r}; map it with columns="
                        f"{{{name!r}: '<column>'}}")
            problems.append((name, f"{hint}. Available columns: {shown}."))
    if problems:
        raise ValidationError(problems, what="input columns")


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
        for row in batch.to_pylist():
            if sig is not None:
                try:
                    row = sig.validate_inputs(row)
                except ValidationError as exc:
                    invalid[i] = f"ValidationError: {exc}"
                    valid[i] = False
                    i += 1
                    continue
            digests[i] = np.frombuffer(cache_digest(program.key, row, lm_key, adapter=adapter,
                                                    temperature=temperature), np.uint8)
            i += 1
    return RowKeys(digests, valid), invalid
