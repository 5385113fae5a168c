"""The kernel side of a run: cut the rows into chunks, keep the pool busy, adapt, stop cleanly.

The scheduler keeps up to two chunks per worker in flight (one running, one queued so a
worker never waits), each carrying its share of the run's concurrency (``SharedLimit``),
and hands every finished chunk to ``on_part`` as it arrives. Chunks are sized from the
measured row latency so that one takes about ``chunk_seconds`` (progress stays lively and an
interrupt waits little), but never so big that a worker idles at the end.

It stops submitting when the budget would be exceeded (``on_budget="stop"``), when a chunk
reports an open circuit breaker, or when the pool breaks; and on Ctrl-C it cancels the
chunks still queued, lets the running ones finish (a second Ctrl-C abandons them) and
returns. A ``cancel`` event (set from another thread) is checked every ``0.2`` s and stops
everything at once: queued and running chunks are cancelled (a worker's chunk stops its LM
calls). Rows it never ran are returned with the reason.

    >>> sched = Scheduler(pool, make_task, table, pending_rows, on_part, on_error, slots=2,
    ...                   limit=SharedLimit(32, 2))
    >>> status, not_run = sched.run()
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dspex_lab.batch.chunk import chunk_stats, run_chunk
from dspex_lab.batch.concurrency import SharedLimit
from dspex_lab.errors import PoolError

__all__ = ["Budget", "RunCancelled", "Scheduler"]

_MAX_CHUNK = 2000
_POLL_S = 0.2


class RunCancelled(Exception):
    """A chunk dropped because the run's ``cancel`` event was set."""


@dataclass
class Budget:
    """A spend limit in USD; ``mode`` is ``stop`` (no new chunks once the projected spend
    would pass it) or ``warn`` (keep going, warn once)."""

    usd: float
    mode: str = "stop"
    spent: float = 0.0
    rows: int = 0  # rows that made LM calls

    def add(self, cost: float, rows: int) -> None:
        """Count the cost of ``rows`` rows that made LM calls."""
        self.spent += cost
        self.rows += rows

    @property
    def per_row(self) -> float | None:
        return self.spent / self.rows if self.rows else None

    def rows_allowed(self, inflight_rows: int) -> int | None:
        """How many more rows may be submitted (None: unknown yet, probe with one chunk)."""
        per_row = self.per_row
        if per_row is None:
            return None
        if per_row <= 0:
            return 1 << 60
        return max(0, math.floor((self.usd - self.spent) / per_row) - inflight_rows)


class Scheduler:
    """Runs ``rows`` of ``table`` through ``pool`` in chunks; see the module docstring."""

    def __init__(self, pool: Any, make_task: Callable[[int, int], Any], table: pa.Table,
                 rows: np.ndarray, on_part: Callable[[np.ndarray, pa.Table, dict], None],
                 on_error: Callable[[np.ndarray, BaseException], None], *, slots: int,
                 limit: SharedLimit, budget: Budget | None = None,
                 chunk_size: int | None = None, chunk_seconds: float = 2.0,
                 on_submit: Callable[[int], None] | None = None,
                 grace_s: float = 30.0, cancel: Any = None) -> None:
        self.pool = pool
        self.make_task = make_task
        self.table = table
        self.rows = rows
        self.on_part = on_part
        self.on_error = on_error
        self.on_submit = on_submit
        self.slots = max(1, slots)
        self.limit = limit
        self.budget = budget
        self.chunk_size = chunk_size
        self.chunk_seconds = chunk_seconds
        self.grace_s = grace_s
        self.cancel = cancel
        self.next = 0  # index into rows of the next row to submit
        self.inflight: dict[cf.Future, tuple[np.ndarray, int]] = {}
        self.latency_s: float | None = None
        self.status = "finished"

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> tuple[str, np.ndarray]:
        """Run until every row is done or the run stops; ``(status, rows not run)``."""
        try:
            while not self._cancelled():
                self._fill()
                if not self.inflight:
                    break
                self._collect(_POLL_S)
        except KeyboardInterrupt:
            self.status = "interrupted"
            self._wind_down()
        return self.status, self.rows[self.next:]

    def _fill(self) -> None:
        while (self.status == "finished" and self.next < len(self.rows)
               and len(self.inflight) < 2 * self.slots):
            size = self._size()
            if size <= 0:
                return
            chunk = self.rows[self.next:self.next + size]
            task = self.make_task(self.limit.share(), self.limit.generation)
            try:
                future = self.pool.submit(run_chunk, task, self.table.take(pa.array(chunk)))
            except PoolError as exc:
                self.status = "pool_broken"
                self.on_error(self.rows[self.next:], exc)
                self.next = len(self.rows)
                return
            self.next += len(chunk)
            self.inflight[future] = (chunk, task.generation)
            if self.on_submit is not None:
                self.on_submit(len(chunk))

    def _size(self) -> int:
        share = self.limit.share()
        left = len(self.rows) - self.next
        if self.chunk_size:
            size = self.chunk_size
        else:
            waves = 4.0 if self.latency_s is None else self.chunk_seconds / max(self.latency_s,
                                                                                1e-3)
            size = int(share * min(max(waves, 2.0), 64.0))
            size = min(size, max(share, math.ceil(left / self.slots)), _MAX_CHUNK)
        size = max(1, min(size, left))
        if self.budget is not None and self.budget.mode == "stop":
            inflight_rows = sum(len(r) for r, _ in self.inflight.values())
            allowed = self.budget.rows_allowed(inflight_rows)
            if allowed is None:  # no cost per row known yet: one probe chunk at a time
                return min(size, share) if not self.inflight else 0
            if allowed <= 0:
                if not self.inflight:
                    self.status = "budget"
                return 0
            size = min(size, allowed)
        return size

    def _collect(self, timeout: float | None) -> None:
        done, _ = cf.wait(list(self.inflight), timeout=timeout,
                          return_when=cf.FIRST_COMPLETED)
        for future in done:
            chunk, generation = self.inflight.pop(future)
            try:
                table = future.result()
            except KeyboardInterrupt as exc:  # a wrapper pool cancelled the run
                self.on_error(chunk, exc)
                raise
            except Exception as exc:
                self.on_error(chunk, exc)
                if isinstance(exc, PoolError):
                    self.status = "pool_broken"
                continue
            stats = chunk_stats(table)
            self.limit.feedback(int(stats.get("rate_limited", 0)), generation)
            self._learn_latency(table)
            if stats.get("circuit_open") and self.status == "finished":
                self.status = "circuit_open"
            self.on_part(chunk, table, stats)

    def _learn_latency(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        mean = pc.mean(table.column("latency_ms")).as_py()
        if mean:
            seconds = mean / 1e3
            self.latency_s = seconds if self.latency_s is None else (
                0.7 * self.latency_s + 0.3 * seconds)

    # -- stopping ------------------------------------------------------------------------------

    def _cancelled(self) -> bool:
        """Whether the ``cancel`` event is set; the first time, drop every chunk in flight."""
        if self.cancel is None or not self.cancel.is_set():
            return False
        if not self.inflight and self.next >= len(self.rows):
            return False  # everything ran already
        if self.status != "cancelled":
            self.status = "cancelled"
            for future, (chunk, _) in list(self.inflight.items()):
                future.cancel()
                self.on_error(chunk, RunCancelled(
                    "the run was cancelled while this row's chunk was running"))
            self.inflight.clear()
        return True

    def _wind_down(self) -> None:
        """After Ctrl-C: cancel queued chunks, let running ones finish within ``grace_s``
        (a second Ctrl-C cancels them), and hand back everything not run."""
        for future, (chunk, _) in list(self.inflight.items()):
            if not _running(future):
                future.cancel()
                self.inflight.pop(future)
                self.on_error(chunk, KeyboardInterrupt("interrupted before it started"))
        deadline = time.monotonic() + self.grace_s
        try:
            while self.inflight and time.monotonic() < deadline:
                self._collect(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:
            pass
        for future, (chunk, _) in list(self.inflight.items()):
            future.cancel()
            self.on_error(chunk, KeyboardInterrupt("interrupted while running"))
        self.inflight.clear()


def _running(future: cf.Future) -> bool:
    """Whether a pool task has started (queued ones can be dropped without losing work)."""
    task = getattr(future, "_task", None)
    state = getattr(task, "state", None)
    if state is not None:
        return state == "sent"
    return future.running()
