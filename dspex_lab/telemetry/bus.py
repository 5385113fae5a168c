"""The event bus: a bounded in-memory buffer plus subscribers.

Events are plain data (``Event``: kind, time, fields). Emitting is cheap (a deque append and
one call per subscriber); a failing subscriber is logged and never breaks the caller.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

log = logging.getLogger("dspex_lab.telemetry")

_SECRET_KEYS = re.compile(
    r"(api[_-]?key|authorization|secret|password|credential|(^|_)token$|access[_-]?token)", re.I)
_SECRET_VALUES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_.\-]{8,})")


@dataclass(slots=True)
class Event:
    """One telemetry event: ``kind`` such as ``"lm.call"`` or ``"pool.task_finished"``."""

    kind: str
    ts: float
    fields: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        return {"kind": self.kind, "ts": self.ts, **self.fields}


@lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.search(key))


def _redact_text(text: str) -> str:
    if "sk-" not in text and "Bearer" not in text:  # the cheap test first: emit is hot
        return text
    return _SECRET_VALUES.sub("***", text)


def finite_number(value: Any) -> float | None:
    """An event field as a finite float, or None (missing, NaN, a string): for aggregators."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def redact(value: Any, key: str = "") -> Any:
    """Hide secrets: values under key-like names and strings that look like API keys."""
    if key and _secret_key(key):
        return "***"
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    return value


class Bus:
    """A bounded event buffer with subscribers. Thread-safe."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.redact_prompts = False

    def emit(self, kind: str, **fields: Any) -> Event:
        for k, v in fields.items():
            if _secret_key(k):
                fields[k] = "***"
            elif isinstance(v, str):
                fields[k] = _redact_text(v)
            elif isinstance(v, dict):
                fields[k] = redact(v, k)
        if self.redact_prompts:
            for k in ("prompt", "response", "messages"):
                if k in fields:
                    fields[k] = "<redacted>"
        event = Event(kind, time.time(), fields)
        self._events.append(event)
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber must never break the caller
                log.exception("telemetry subscriber %r failed", callback)
        return event

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every new event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [c for c in self._subscribers if c is not callback]

        return unsubscribe

    def snapshot(self, kinds: Iterable[str] | str | None = None) -> list[Event]:
        items = list(self._events)
        if kinds is None:
            return items
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)
        return [e for e in items if e.kind in wanted or e.kind.split(".")[0] in wanted]

    def clear(self) -> None:
        self._events.clear()


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

    ``kind`` filters by exact kind (``"lm.call"``) or by prefix (``"pool"``).
    """
    import pandas as pd

    rows = [e.as_row() for e in _BUS.snapshot(kind)]
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
