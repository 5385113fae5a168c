"""``export(path)``: the buffered telemetry events to a Parquet, CSV or JSON-lines file.

The format follows the suffix (``.parquet``, ``.csv``, ``.jsonl``/``.ndjson``) unless
``format`` is given. Rows are ``telemetry.events()`` (one per event, one column per field,
``ts`` as a timestamp); values that are not scalars (dicts, lists) are written as JSON text so
every format can hold them.

    >>> from dspex_lab.telemetry.export import export
    >>> export("calls.parquet", kind="lm.call")
    PosixPath('calls.parquet')
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dspex_lab.errors import ConfigurationError

__all__ = ["FORMATS", "export"]

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
           ".ndjson": "jsonl"}


def export(path: str | Path, kind: Iterable[str] | str | None = None, *,
           format: str | None = None) -> Path:
    """Write the buffered events (filtered by ``kind``, as ``telemetry.events``) to ``path``;
    returns the path."""
    from dspex_lab.telemetry.bus import events

    path = Path(path)
    fmt = format or FORMATS.get(path.suffix.lower())
    if fmt not in ("parquet", "csv", "jsonl"):
        raise ConfigurationError(
            f"Cannot tell the export format of {str(path)!r}; use a .parquet, .csv or .jsonl "
            "file name, or pass format='parquet' | 'csv' | 'jsonl'.")
    frame = _flat(events(kind))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    return path


def _flat(frame: Any) -> Any:
    """Object columns -> one type each: dicts/lists/objects become JSON text, and a column
    mixing types (``5`` in one event, ``"a"`` in another) becomes text. None stays None."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype != object:
            continue
        values = frame[col].map(_scalar)
        kinds = {type(v) for v in values if v is not None and v == v}
        if not (kinds <= {int, float} or kinds <= {bool} or kinds <= {str}):
            values = values.map(lambda v: v if v is None or v != v else str(v))
        frame[col] = values
    return frame


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
