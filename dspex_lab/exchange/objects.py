"""Python values <-> buffers for the wire: tables as Arrow IPC, everything else cloudpickled.

    >>> payload, extra = encode(df)                       # nothing is copied yet
    >>> target = bytearray(payload.size); payload.write(memoryview(target))
    >>> decode(payload.kind, memoryview(target), payload.meta).equals(df)
    True

Tables (pandas DataFrame/Series, pyarrow Table/RecordBatch, anything with
``__arrow_c_stream__``) become one Arrow IPC stream written straight into the frame; they come
back as the same kind of object (a ``__arrow_c_stream__`` object comes back as a
``pa.Table``); object columns Arrow cannot hold exactly travel as pickled values
(``exchange.values``). A DataFrame Arrow cannot hold at all (column labels that are not
strings, an index of mixed types) is cloudpickled instead, so it still arrives exactly as
sent. Other values are cloudpickled with protocol 5:
large contiguous buffers (numpy arrays) are returned as ``extra`` so that they travel beside
the pickle stream, not through it, and come back without a copy when the frame is writable.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dspex_lab.exchange import pickling

__all__ = ["Payload", "decode", "dumps", "encode", "loads", "table_kind"]


@dataclass(frozen=True)
class Payload:
    """An encoded value: ``size`` bytes that ``write(target)`` puts into a writable memoryview
    of exactly that size, or into a binary file at its current position."""

    kind: str                       # "arrow" or "pickle"
    size: int
    write: Callable[[Any], None]
    meta: Any = None                # msgpack-able; for "arrow": {"as": shape, "name": ...}


def table_kind(obj: Any) -> str | None:
    """"pandas", "series", "table" or "batch" when ``obj`` travels as Arrow, else None."""
    pd, pa = sys.modules.get("pandas"), sys.modules.get("pyarrow")
    if pd is not None and isinstance(obj, pd.DataFrame):
        return "pandas"
    if pd is not None and isinstance(obj, pd.Series):
        return "series"
    if pa is not None and isinstance(obj, pa.Table):
        return "table"
    if pa is not None and isinstance(obj, pa.RecordBatch):
        return "batch"
    if hasattr(type(obj), "__arrow_c_stream__") and not isinstance(obj, type):
        return "table"
    return None


def encode(obj: Any) -> tuple[Payload, list[memoryview]]:
    """Encode ``obj``; return the payload and its out-of-band buffers (pickle only).

    Raises ``TypeError`` naming the reason when ``obj`` cannot be pickled.
    """
    payload = _encode_table(obj)
    if payload is not None:
        return payload, []
    return _encode_pickle(obj)


def _encode_table(obj: Any) -> Payload | None:
    kind = table_kind(obj)
    if kind is None:
        return None
    from dspex_lab.exchange import arrow

    meta: dict[str, Any] = {"as": kind}
    if kind == "pandas" and not all(isinstance(c, str) for c in obj.columns):
        return None   # Arrow names are strings: cloudpickle keeps labels such as 0 exact
    if kind == "series":
        if not (obj.name is None or type(obj.name) in (str, int, float, bool)):
            return None
        meta["name"] = obj.name
    try:
        table = obj if kind == "batch" else arrow.to_arrow(obj)
    except (TypeError, ValueError):
        return None   # e.g. an object column of mixed types: cloudpickle keeps it exact
    freq = getattr(getattr(obj, "index", None), "freqstr", None)
    if freq and kind in ("pandas", "series"):
        meta["freq"] = freq    # a DatetimeIndex's frequency is not in pyarrow's metadata
    return Payload("arrow", arrow.ipc_size(table), lambda view: arrow.write_ipc(table, view),
                   meta)


def _encode_pickle(obj: Any) -> tuple[Payload, list[memoryview]]:
    buffers: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buffer.raw())
        except BufferError:   # not contiguous: keep it in the pickle stream
            return True
        return False

    try:
        data = pickling.dumps(obj, protocol=5, buffer_callback=out_of_band)
    except Exception as exc:
        raise TypeError(f"cloudpickle failed: {type(exc).__name__}: {exc}") from exc
    return Payload("pickle", len(data), copier(data)), buffers


def dumps(value: Any) -> bytes:
    """Pickle one value to keep (result cache, pickled table columns): by reference when that
    works (a class found again by name after a kernel restart), else with cloudpickle, by
    value (classes defined in a function, or sent by value from the kernel to a worker).

    Raises ``TypeError`` naming the value's type when neither can pickle it.
    """
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        pass
    try:
        return pickling.dumps(value, protocol=5)
    except Exception as exc:
        raise TypeError(f"A {type(value).__name__} value cannot be pickled "
                        f"({type(exc).__name__}: {exc}).") from exc


def loads(blob: Any) -> Any:
    """The value ``dumps`` pickled (bytes or any buffer)."""
    return pickle.loads(blob)


def copier(data: Any) -> Callable[[Any], None]:
    """A ``write`` function copying the bytes-like ``data`` into a memoryview or a file."""
    source = memoryview(data).cast("B")

    def write(target: Any) -> None:
        if isinstance(target, memoryview):
            target[:source.nbytes] = source
        else:
            target.write(source)

    return write


def decode(kind: str, view: memoryview, meta: Any, buffers: list[memoryview] = ()) -> Any:
    """Rebuild a value from ``encode``'s payload bytes (and its out-of-band buffers).

    Raises ``ValueError`` for an unknown kind or table shape; Arrow and pickle errors pass on.
    """
    if kind == "arrow":
        return _decode_table(view, meta)
    if kind == "pickle":
        writable = [b if not b.readonly else bytearray(b) for b in buffers]  # arrays stay writable
        return pickle.loads(view, buffers=writable)
    raise ValueError(f"Unknown payload kind {kind!r}.")


def _decode_table(view: memoryview, meta: Any) -> Any:
    import pyarrow as pa

    from dspex_lab.exchange import arrow

    shape = meta.get("as") if isinstance(meta, dict) else None
    if shape == "batch":
        batch = pa.ipc.open_stream(pa.py_buffer(view)).read_next_batch()
        batch.validate(full=True)
        return batch
    table = arrow.ipc_to_table(view)
    if shape == "table":
        return table
    frame = arrow.to_pandas(table, arrow_dtypes=False)
    if meta.get("freq"):
        frame.index.freq = meta["freq"]
    if shape == "series":
        series = frame.iloc[:, 0]
        series.name = meta.get("name")
        return series
    if shape == "pandas":
        return frame
    raise ValueError(f"Unknown table shape {shape!r}.")
