"""The event bus: a bounded in-memory buffer plus subscribers.

Events are plain data (``Event``: kind, time, fields). Emitting is cheap (a deque append and
one call per subscriber); a failing subscriber is logged and never breaks the caller.

A batch run reports its LM calls columnar: one ``lm.calls`` event per finished chunk whose
``calls`` field is a compact Arrow table (``row``, ``latency_ms``, ``prompt_tokens``,
``completion_tokens``, ``cost``, ``error``, ``cached``; about 30 bytes a row; the route and
model are fields of the event), not a dict per row. ``per_call(event)`` turns either form into
``lm.call`` events, ``call_totals`` sums a table, ``events()`` shows one row per call, and the
buffer is bounded by calls (a chunk of 500 rows weighs 500).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.redaction import MASK, is_secret_key, redact, redact_text, secret_pattern

log = logging.getLogger("dspex_lab.telemetry")


@dataclass(slots=True)
class Event:
    """One telemetry event: ``kind`` such as ``"lm.call"`` or ``"pool.task_finished"``."""

    kind: str
    ts: float
    fields: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """The event as one flat dict: kind, ts and its fields."""
        return {"kind": self.kind, "ts": self.ts, **self.fields}


CALLS = "lm.calls"
"""The kind of a batch's columnar LM-call event (see the module docstring)."""


def per_call(event: Event) -> Iterator[Event]:
    """``event`` as ``lm.call`` events: itself, or one per row of an ``lm.calls`` table."""
    if event.kind != CALLS:
        yield event
        return
    shared = {k: v for k, v in event.fields.items() if k != "calls"}
    for row in _call_rows(event):
        yield Event("lm.call", event.ts, {**shared, **row})


def _call_rows(event: Event) -> list[dict[str, Any]]:
    table = event.fields.get("calls")
    return table.to_pylist() if table is not None else []


def call_totals(table: Any) -> dict[str, float]:
    """Sums over an ``lm.calls`` table: ``calls``, ``prompt_tokens``, ``completion_tokens``,
    ``cost``, ``cached`` and ``errors``, plus ``latency_ms`` (the sum) over ``timed`` rows
    (those with a latency). A missing column counts as zero.

    With a ``status`` column (batch runs), ``errors`` counts the rows that *failed*, status
    ``error`` or ``invalid`` (as ``df.attrs["usage"]["errors"]`` does), never the rows that
    did not run (``not_run``: a cancel, the budget, an open circuit), and ``calls`` leaves out
    the rows that made no call (``not_run``, ``invalid``); without one, every non-null
    ``error`` is an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    if "status" in names:
        status = table.column("status")
        failed = int(pc.sum(pc.is_in(status, pa.array(_FAILED))).as_py() or 0)
        no_call = int(pc.sum(pc.is_in(status, pa.array(_NO_CALL))).as_py() or 0)
    else:
        failed = table.num_rows - table.column("error").null_count if "error" in names else 0
        no_call = 0

    def total(name: str) -> float:
        return (pc.sum(table.column(name)).as_py() or 0) if name in names else 0

    def present(name: str) -> int:
        return table.num_rows - table.column(name).null_count if name in names else 0

    out = {name: total(name) for name in ("prompt_tokens", "completion_tokens", "cost",
                                           "cached", "latency_ms")}
    return {**out, "calls": table.num_rows - no_call, "errors": failed,
            "timed": present("latency_ms")}


# ``dspex_lab.batch.status`` vocabulary (not imported: telemetry is below the batch package)
_FAILED = ("error", "invalid")
_NO_CALL = ("not_run", "invalid")


def _weight(event: Event) -> int:
    if event.kind == CALLS:
        return max(1, int(getattr(event.fields.get("calls"), "num_rows", 1)))
    return 1


def finite_number(value: Any) -> float | None:
    """An event field as a finite float, or None (missing, NaN, a string): for aggregators."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _redact_table(table: Any) -> Any:
    """An Arrow table with secrets masked in its string columns (a copy only when needed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pattern = secret_pattern()
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if not pa.types.is_string(column.type) or not pc.any(
                pc.match_substring_regex(column, pattern)).as_py():
            continue
        table = table.set_column(i, name, pc.replace_substring_regex(column, pattern, MASK))
    return table


class Bus:
    """An event buffer bounded to ``maxlen`` calls (an ``lm.calls`` event weighs its rows),
    with subscribers. Thread-safe."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self.maxlen = maxlen
        self._events: deque[Event] = deque()
        self._weights: deque[int] = deque()
        self._weight = 0
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.redact_prompts = False

    def emit(self, kind: str, **fields: Any) -> Event:
        """Buffer an event (secrets masked) and hand it to every subscriber; returns it."""
        for k, v in fields.items():
            if is_secret_key(k):
                fields[k] = MASK
            elif isinstance(v, str):
                fields[k] = redact_text(v)
            elif isinstance(v, dict):
                fields[k] = redact(v, k)
            elif hasattr(v, "column_names"):
                fields[k] = _redact_table(v)
        if self.redact_prompts:
            for k in ("prompt", "response", "messages"):
                if k in fields:
                    fields[k] = "<redacted>"
        event = Event(kind, time.time(), fields)
        self._append(event)
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber must never break the caller
                log.exception("telemetry subscriber %r failed", callback)
        return event

    def _append(self, event: Event) -> None:
        weight = _weight(event)
        with self._lock:
            self._events.append(event)
            self._weights.append(weight)
            self._weight += weight
            while self._weight > self.maxlen and len(self._events) > 1:
                self._events.popleft()
                self._weight -= self._weights.popleft()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every new event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [c for c in self._subscribers if c is not callback]

        return unsubscribe

    def snapshot(self, kinds: Iterable[str] | str | None = None) -> list[Event]:
        """The buffered events, oldest first; ``kinds`` filters by kind or prefix (asking for
        ``lm.call`` includes batches' ``lm.calls`` events)."""
        with self._lock:
            items = list(self._events)
        if kinds is None:
            return items
        wanted = _wanted(kinds)
        return [e for e in items if _matches(e.kind, wanted)]

    def clear(self) -> None:
        """Drop every buffered event."""
        with self._lock:
            self._events.clear()
            self._weights.clear()
            self._weight = 0


def _wanted(kinds: Iterable[str] | str) -> set[str]:
    wanted = {kinds} if isinstance(kinds, str) else set(kinds)
    return wanted | {CALLS} if "lm.call" in wanted else wanted


def _matches(kind: str, wanted: set[str]) -> bool:
    return kind in wanted or kind.split(".")[0] in wanted


_BUS = Bus()


def get_bus() -> Bus:
    """The process-wide bus."""
    return _BUS


def emit(kind: str, **fields: Any) -> Event:
    """Emit an event on the process-wide bus."""
    return _BUS.emit(kind, **fields)


def subscribe(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Subscribe to the process-wide bus; returns the unsubscribe function."""
    return _BUS.subscribe(callback)


def clear() -> None:
    """Drop every buffered event."""
    _BUS.clear()


def events(kind: Iterable[str] | str | None = None):
    """The buffered events as a pandas DataFrame (one row per event, one column per field).

    ``kind`` filters by exact kind (``"lm.call"``) or by prefix (``"pool"``). A batch's
    ``lm.calls`` events show as one ``lm.call`` row per call.
    """
    import pandas as pd

    wanted = None if kind is None else _wanted(kind)
    if wanted and CALLS in wanted:
        wanted.add("lm.call")
    rows = [e.as_row() for event in _BUS.snapshot(kind) for e in per_call(event)
            if wanted is None or _matches(e.kind, wanted)]
    df = pd.DataFrame(rows, columns=None if rows else ["kind", "ts"])
    if len(df):
        df["ts"] = pd.to_datetime(df["ts"], unit="s")
    return df


def summary(kind: str | None = "lm.call"):
    """Counts, error rate, latency percentiles, tokens and cost per event kind."""
    import pandas as pd

    df = events(kind)
    if df.empty:
        return pd.DataFrame()
    agg: dict[str, Any] = {"count": ("kind", "size")}
    if "latency_ms" in df:
        agg |= {"p50_ms": ("latency_ms", "median"),
                "p95_ms": ("latency_ms", lambda s: s.quantile(0.95))}
    for col in ("prompt_tokens", "completion_tokens", "cost"):
        if col in df:
            agg[col] = (col, "sum")
    if "error" in df:
        agg["errors"] = ("error", lambda s: int(s.notna().sum()))
    return df.groupby("kind").agg(**agg)
