"""``BatchJob``: ``dspex_lab.batch.run`` in a background thread, with progress, live rows and a
prompt cancel (the model of the ``BatchRunner`` widget; it works without Jupyter).

Widget callbacks do not run while the kernel executes a cell, so a run that a Cancel button
must be able to stop cannot run in the cell: the job runs it in a daemon thread and returns at
once. Progress comes from the run's own telemetry (``run.started``/``run.progress`` events
emitted in the job's thread); the rows finished so far come from the run's ``on_part``.

Cancelling sets the run's ``cancel`` event: the run drops its queued and running chunks at
once and returns with ``status == "cancelled"``: the rows already finished keep their answers,
the others get a ``Cancelled`` error, and the frame is in ``job.result`` and
``dspex_lab.last_run()``.

    >>> job = BatchJob("question -> answer", df).start()
    >>> job.done_rows, job.total                 # live counters
    >>> job.live_frame().tail()                  # rows finished so far
    >>> job.cancel(); job.wait()                 # the (partial) result frame
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from dspex_lab import telemetry
from dspex_lab.batch import status as _status
from dspex_lab.errors import ConfigurationError

__all__ = ["LIVE_ROWS", "BatchJob", "not_run"]

STATES = ("ready", "running", "cancelling", "finished", "cancelled", "failed")
LIVE_ROWS = 1000
"""How many of the latest finished rows a job keeps for ``live_frame``."""


class BatchJob:
    """One batch run in a background thread; see the module docstring.

    ``program`` and ``data`` are what ``dspex_lab.batch.run`` takes; ``run_options`` are its
    keyword options (``lm``, ``pool``, ``concurrency``, ``temperature``...). The job shows its
    own progress, so ``progress`` defaults to False.
    """

    def __init__(self, program: Any, data: Any, **run_options: Any) -> None:
        self.program = program
        self.data = data
        self.run_options = {"progress": False, **run_options}
        self.state = "ready"
        self.total = len(data) if hasattr(data, "__len__") else 0
        self.done_rows = self.errors = self.tokens = self.not_run = 0
        self.run_id: str | None = None
        self.cost = 0.0
        self.result: Any = None
        self.exception: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.version = 0  # bumped on every change (views refresh when it moves)
        self._parts: deque[Any] = deque()  # the latest finished parts, for live_frame
        self._parts_lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._done = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> BatchJob:
        """Start the run in a daemon thread and return at once."""
        if self.state != "ready":
            raise ConfigurationError(f"This job is {self.state}; a job runs once. Start a new "
                                     "BatchJob (or press Run again in the BatchRunner).")
        self.state = "running"
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name="dspex-batch-job", daemon=True)
        self._unsubscribe = telemetry.subscribe(self._on_event)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the run promptly; finished rows are kept (see the module docstring)."""
        if self.state == "running":
            self.state = "cancelling"
            self.version += 1
            self._cancel.set()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the run to end (at most ``timeout`` seconds); returns the result frame
        (None while still running). A run that failed re-raises its exception."""
        self._done.wait(timeout)
        if self.exception is not None and self.result is None:
            raise self.exception
        return self.result

    @property
    def running(self) -> bool:
        return self.state in ("running", "cancelling")

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.perf_counter()) - self.started_at

    @property
    def rows_per_s(self) -> float:
        return self.done_rows / self.elapsed if self.elapsed else 0.0

    # -- the thread ------------------------------------------------------------------------------
    def _main(self) -> None:
        from dspex_lab.batch import last_run, run

        self._ident = threading.get_ident()
        try:
            self.result = run(self.program, self.data, cancel=self._cancel,
                              on_part=self._on_part, **self.run_options)
        except KeyboardInterrupt:
            self.result = last_run()
        except BaseException as exc:  # kept for wait(); the view shows it
            self.exception = exc
            self.result = last_run() if self.run_id is not None else None
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        usage = getattr(self.result, "attrs", {}).get("usage") or {}
        cancelled = self._cancel.is_set() and usage.get("status") in ("cancelled", None)
        if self.exception is not None:
            self.state = "failed"
        else:
            self.state = "cancelled" if cancelled else "finished"
        if self.result is not None and "status" in getattr(self.result, "columns", ()):
            counts = _status.counts(self.result["status"])
            self.not_run = counts[_status.NOT_RUN]
            self.done_rows = _status.finished(counts)
            self.errors = counts[_status.ERROR] + counts[_status.INVALID]
        self.finished_at = time.perf_counter()
        self.version += 1
        self._done.set()

    def _on_event(self, event: telemetry.Event) -> None:
        if threading.get_ident() != self._ident:
            return
        f = event.fields
        if event.kind == "run.started":
            self.run_id = f.get("run_id")
            self.total = int(f.get("rows") or self.total)
        elif event.kind == "run.progress":
            self.done_rows = int(f.get("rows_done") or 0)
            self.errors = int(f.get("errors") or 0)
            self.tokens = int(f.get("tokens") or 0)
            self.cost = float(f.get("cost") or 0.0)
        else:
            return
        self.version += 1

    def _on_part(self, frame: Any) -> None:
        with self._parts_lock:  # read by the view's thread
            self._parts.append(frame)
            kept = sum(len(f) for f in self._parts)
            while len(self._parts) > 1 and kept - len(self._parts[0]) >= LIVE_ROWS:
                kept -= len(self._parts.popleft())
        self.version += 1

    # -- the rows so far -------------------------------------------------------------------------
    def live_frame(self, max_rows: int | None = 20) -> Any:
        """The latest finished rows (inputs, outputs, error, latency, tokens, cost) as a
        DataFrame, most recent last; ``max_rows=None`` for all that are kept (the last
        ``LIVE_ROWS`` or so: the result frame has every row)."""
        import pandas as pd

        frames, rows = [], 0
        with self._parts_lock:
            parts = list(self._parts)
        for part in reversed(parts):
            frames.append(part)
            rows += len(part)
            if max_rows is not None and rows >= max_rows:
                break
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames[::-1])
        return frame if max_rows is None else frame.tail(max_rows)


def not_run(frame: Any) -> Any:
    """A boolean mask (numpy) of the rows of a result frame that never ran (cancelled,
    interrupted, budget reached...: status ``not_run``)."""
    import numpy as np

    if "status" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame["status"].astype(object).to_numpy() == _status.NOT_RUN
