"""The ``df.dspex`` accessor on pandas DataFrames: a result frame's row traces and its
readable view. Registered when a run finishes (and on ``import dspex_lab.accessor``).

    >>> res = dspex_lab.run("question -> answer", df)
    >>> res.dspex.trace(3)           # row 3's LM calls, attempts, errors, timing, tokens, cost
    >>> res.dspex.show()             # status colours, error causes, rounded floats
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dspex_lab.display.frame import ResultTable
from dspex_lab.errors import ConfigurationError
from dspex_lab.trace import RowTrace, lookup, position

__all__ = ["DspexAccessor", "register"]

_ROW_COLUMNS = ("status", "error", "error_type", "attempts", "latency_ms", "prompt_tokens",
                "completion_tokens", "cost", "cached")


class DspexAccessor:
    """``df.dspex``: views over a ``dspex_lab.run`` result frame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def show(self, max_rows: int = 60) -> ResultTable:
        """The frame as a readable table (display only: the data keep full precision)."""
        return ResultTable(self._frame, max_rows=max_rows)

    def trace(self, row: Any) -> RowTrace:
        """The trace of the row labelled ``row`` (its index label; an int that is not a
        label is taken as a position): its LM calls, attempts, errors, timing, tokens, cost.
        Works on filtered frames of a run too (``res[res.status == "error"].dspex.trace(7)``)."""
        frame = self._frame
        run_id = frame.attrs.get("run_id")
        if run_id is None or "status" not in frame.columns:
            raise ConfigurationError("This DataFrame is not a dspex_lab.run result (it has no "
                                     "run id or status column); call .dspex.trace() on the "
                                     "frame run() returned.")
        if row in frame.index:
            label, values = row, frame.loc[row]
        elif isinstance(row, int) and 0 <= row < len(frame):
            label, values = frame.index[row], frame.iloc[row]
        else:
            raise ConfigurationError(f"Row {row!r} is not in this frame; pass an index label "
                                     f"(or a position below {len(frame)}).")
        if isinstance(values, pd.DataFrame):
            raise ConfigurationError(f"The label {row!r} names {len(values)} rows; pass a "
                                     "position with .iloc-style ints on a unique index.")
        at = position(run_id, label)
        fields = {k: _plain(values[k]) for k in _ROW_COLUMNS if k in values.index}
        return RowTrace(label, fields, None if at is None else lookup(run_id, at))


def _plain(value: Any) -> Any:
    try:
        return None if pd.isna(value) else value.item() if hasattr(value, "item") else value
    except (TypeError, ValueError):
        return value


def register() -> None:
    """Register ``DataFrame.dspex`` (idempotent)."""
    if "dspex" not in getattr(pd.DataFrame, "_accessors", set()):
        pd.api.extensions.register_dataframe_accessor("dspex")(DspexAccessor)


register()
