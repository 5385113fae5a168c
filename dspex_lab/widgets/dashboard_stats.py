"""``DashboardStats``: telemetry events folded into the numbers the dashboard plots.

Pure (no threads, no widgets, no plotly), so the math is testable on its own. What counts as
one call: every ``lm.call`` event, every row of a batch's ``lm.calls`` event, and every
``call`` event except an uncached ``native`` one (an inline kernel run, whose LM call already
emits its own ``lm.call``). Per call it keeps the latency (the last ``max_latencies``), the
route (``native``, ``pool``... or ``kernel`` for an LM called directly), tokens, cost and, for
a failed call, the cause (``triage.classify_error``). Batch rows that made no LM call
(``run.skipped``: not run because of a cancel, the budget or an open circuit; or inputs that
do not fit; rows of an ``lm.calls`` table or events whose ``status`` is ``not_run`` or
``invalid``) are counted in ``skipped`` and in their cause, nothing else: the row's status
says so, never its error text. Time series are
per-second buckets relative to the first event, trimmed to the last ``window_s`` seconds.
Pool workers come from ``pool_status()`` snapshots.

    >>> stats = DashboardStats()
    >>> stats.add(Event("lm.call", 100.2, {"latency_ms": 40.0, "prompt_tokens": 10,
    ...                                    "completion_tokens": 5, "cost": 0.001}))
    True
    >>> stats.totals()["calls"], stats.totals()["tokens"]
    (1, 15)
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from dspex_lab.batch import status as _status
from dspex_lab.telemetry import CALLS, Event, call_totals
from dspex_lab.telemetry.bus import finite_number
from dspex_lab.widgets.triage import classify_error, row_cause

__all__ = ["DashboardStats"]

_BUCKET_FIELDS = 4  # calls, errors, tokens, cost
_NO_CALL = {_status.NOT_RUN: "not_run", _status.INVALID: "input"}  # status -> cause


class DashboardStats:
    """Counters, a latency sample, per-second buckets and worker rows; see the module
    docstring."""

    def __init__(self, *, window_s: int = 300, max_latencies: int = 5000,
                 latency_bins: int = 30) -> None:
        self.window_s = window_s
        self.latency_bins = latency_bins
        self.calls = self.errors = self.cached = self.skipped = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0
        self.latencies: deque[float] = deque(maxlen=max_latencies)
        self.routes: Counter[str] = Counter()
        self.causes: Counter[str] = Counter()
        self.worker_events: Counter[str] = Counter()
        self.workers: list[dict[str, Any]] = []
        self.t0: float | None = None
        self._buckets: dict[int, list[float]] = {}
        self._dropped = [0.0, 0.0]  # tokens and cost of the buckets trimmed away

    # -- folding events --------------------------------------------------------------------------
    def add(self, event: Event) -> bool:
        """Fold one event in; True when it changed something the dashboard shows."""
        kind, f = event.kind, event.fields
        if kind.startswith("pool.worker_"):
            self.worker_events[kind.removeprefix("pool.worker_")] += 1
            return True
        if kind == "call" and f.get("route") == "native" and not f.get("cached"):
            return False
        if kind == "run.skipped":
            rows = int(finite_number(f.get("rows")) or 0)
            self.skipped += rows
            self.causes["input" if f.get("reason") == "input" else "not_run"] += rows
            return rows > 0
        if kind == CALLS:
            return self._calls(event)
        if kind not in ("lm.call", "call"):
            return False
        self._call(event.ts, f)
        return True

    def add_many(self, events: Iterable[Event]) -> bool:
        """Fold many events in; True when any changed what the dashboard shows."""
        changed = False
        for event in events:
            changed = self.add(event) or changed
        return changed

    def _calls(self, event: Event) -> bool:
        """A batch's columnar ``lm.calls`` event: summed with Arrow, causes per failure."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = event.fields.get("calls")
        if table is None or not table.num_rows:
            return False
        names = table.column_names
        if "status" in names:  # rows inside a part that made no call (circuit open)
            skipped = pc.is_in(table.column("status"), pa.array(list(_NO_CALL)))
            skipped_rows = int(pc.sum(skipped).as_py() or 0)
            if skipped_rows:
                for state, rows in _status.counts(table.column("status").filter(skipped)
                                                  ).items():
                    if rows:
                        self.causes[_NO_CALL[state]] += rows
                self.skipped += skipped_rows
                table = table.filter(pc.invert(skipped))
                if not table.num_rows:
                    return True
        sums = call_totals(table)
        if "latency_ms" in names:
            latency = table.column("latency_ms")
            if "cached" in names:
                latency = latency.filter(pc.invert(pc.fill_null(table.column("cached"), False)))
            self.latencies.extend(x for x in latency.to_pylist()[-self.latencies.maxlen:]
                                  if finite_number(x) is not None)
        if "error" in names:
            failed = table.filter(pc.is_valid(table.column("error")))
            kinds = failed.column("error_type").to_pylist() if "error_type" in names else \
                [None] * failed.num_rows
            for error, kind in zip(failed.column("error").to_pylist(), kinds, strict=True):
                self.causes[classify_error(error, kind) or "exception"] += 1
        self._count(event.ts, int(sums["calls"]), int(sums["errors"]),
                    int(sums["prompt_tokens"]), int(sums["completion_tokens"]),
                    float(sums["cost"]), int(sums["cached"]),
                    str(event.fields.get("route") or "kernel"))  # one route per part
        return True

    def _call(self, ts: float, f: dict[str, Any]) -> None:
        state = f.get("status")
        if state in _NO_CALL:  # a batch row that made no LM call: not run, or bad inputs
            self.skipped += 1
            self.causes[_NO_CALL[state]] += 1
            return
        cause = row_cause(state, f.get("error"), f.get("error_type")) if state else \
            classify_error(f.get("error"), f.get("error_type"))
        latency = finite_number(f.get("latency_ms"))
        if latency is not None and not f.get("cached"):
            self.latencies.append(latency)
        if cause is not None:
            self.causes[cause] += 1
        self._count(ts, 1, int(cause is not None), int(finite_number(f.get("prompt_tokens")) or 0),
                    int(finite_number(f.get("completion_tokens")) or 0),
                    finite_number(f.get("cost")) or 0.0, int(bool(f.get("cached"))),
                    str(f.get("route") or "kernel"))

    def _count(self, ts: float, calls: int, errors: int, prompt: int, completion: int,
               cost: float, cached: int, route: str) -> None:
        """Add calls made at ``ts`` to the totals and to their second's bucket."""
        if self.t0 is None:
            self.t0 = ts
        self.calls += calls
        self.errors += errors
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost += cost
        self.cached += cached
        self.routes[route] += calls
        bucket = self._buckets.setdefault(int(ts - self.t0), [0.0] * _BUCKET_FIELDS)
        bucket[0] += calls
        bucket[1] += errors
        bucket[2] += prompt + completion
        bucket[3] += cost
        self._trim()

    def _trim(self) -> None:
        if len(self._buckets) <= self.window_s:
            return
        newest = max(self._buckets)
        for second in [s for s in self._buckets if s <= newest - self.window_s]:
            old = self._buckets.pop(second)
            self._dropped[0] += old[2]
            self._dropped[1] += old[3]

    def set_workers(self, pools: Iterable[dict[str, Any]]) -> bool:
        """Take a ``pool_status()`` snapshot; True when the worker rows changed."""
        rows = [{"worker": f"{p.get('name')}/{w.get('pid')}", "pool": p.get("name"),
                 "state": w.get("state"), "tasks": int(w.get("tasks") or 0),
                 "rss_mb": w.get("rss_mb")}
                for p in pools for w in (p.get("workers") or [])]
        changed = [(r["worker"], r["state"], r["tasks"]) for r in rows] != [
            (r["worker"], r["state"], r["tasks"]) for r in self.workers]
        self.workers = rows
        return changed

    # -- views -----------------------------------------------------------------------------------
    def totals(self) -> dict[str, Any]:
        """calls, errors, cached, skipped (rows without a call: ``not_run`` + ``invalid``),
        tokens, cost, p50/p95 latency (ms), calls/s (last 10 s)."""
        p50, p95 = self.percentiles()
        return {"calls": self.calls, "errors": self.errors, "cached": self.cached,
                "skipped": self.skipped, "not_run": self.causes["not_run"],
                "invalid": self.causes["input"],
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "tokens": self.prompt_tokens + self.completion_tokens, "cost": self.cost,
                "p50_ms": p50, "p95_ms": p95, "calls_per_s": self.recent_rate()}

    def percentiles(self) -> tuple[float | None, float | None]:
        """p50 and p95 of the kept latencies (ms), or None before the first call."""
        if not self.latencies:
            return None, None
        p50, p95 = np.percentile(np.fromiter(self.latencies, float), [50, 95])
        return float(p50), float(p95)

    def recent_rate(self, seconds: int = 10) -> float:
        """Calls per second over the last ``seconds`` seconds that have calls."""
        if not self._buckets:
            return 0.0
        newest = max(self._buckets)
        first = max(min(self._buckets), newest - seconds + 1)
        calls = sum(b[0] for s, b in self._buckets.items() if s >= first)
        return calls / (newest - first + 1)

    def latency_histogram(self) -> tuple[list[float], list[int], float]:
        """Bin centres (ms), counts, and the bin width."""
        if not self.latencies:
            return [], [], 0.0
        values = np.fromiter(self.latencies, float)
        counts, edges = np.histogram(values, bins=self.latency_bins)
        centres = (edges[:-1] + edges[1:]) / 2
        return centres.tolist(), counts.tolist(), float(edges[1] - edges[0])

    def latency_log_histogram(self) -> tuple[list[float], list[int]]:
        """Bin centres (ms, geometric) and counts over log-spaced bins: one 60,000 ms outlier
        adds a bar on the right instead of squeezing every other call into the first bin."""
        if not self.latencies:
            return [], []
        values = np.maximum(np.fromiter(self.latencies, float), 0.1)
        low, high = float(values.min()), float(values.max())
        if high <= low * 1.01:
            return [low], [len(values)]
        counts, edges = np.histogram(values, bins=np.geomspace(low, high * 1.0001,
                                                               self.latency_bins + 1))
        return np.sqrt(edges[:-1] * edges[1:]).tolist(), counts.tolist()

    def series(self) -> dict[str, list[float]]:
        """Per-second series (every second from the oldest kept to the newest): ``t`` (s
        since the first call), ``calls``, ``errors``, and the running ``tokens`` and ``cost``."""
        if not self._buckets:
            return {"t": [], "calls": [], "errors": [], "tokens": [], "cost": []}
        seconds = range(min(self._buckets), max(self._buckets) + 1)
        empty = [0.0] * _BUCKET_FIELDS
        rows = np.array([self._buckets.get(s, empty) for s in seconds])
        return {"t": list(map(float, seconds)), "calls": rows[:, 0].tolist(),
                "errors": rows[:, 1].tolist(),
                "tokens": (self._dropped[0] + np.cumsum(rows[:, 2])).tolist(),
                "cost": (self._dropped[1] + np.cumsum(rows[:, 3])).tolist()}


