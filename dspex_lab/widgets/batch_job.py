"""``BatchJob``: ``dspex_lab.batch.run`` in a background thread, with progress, live rows and a
prompt cancel (the model of the ``BatchRunner`` widget; it works without Jupyter).

Widget callbacks do not run while the kernel executes a cell, so a run that a Cancel button
must be able to stop cannot run in the cell: the job runs it in a daemon thread and returns at
once. Progress comes from the run's own telemetry (``run.started``/``run.progress``/
``lm.call`` events emitted in the job's thread); the rows finished so far come from the chunks
the pool hands back.

Cancelling uses the run's interrupt path (the same as Ctrl-C): the job wraps the pool, and
``cancel()`` makes every chunk still in flight report ``KeyboardInterrupt`` at once (their pool
tasks are cancelled too) and refuses new chunks. The run then returns as an interrupted run:
the rows already finished keep their answers, the others get an ``Interrupted`` error, and the
frame is in ``job.result`` and ``dspex_lab.last_run()``.

    >>> job = BatchJob("question -> answer", df).start()
    >>> job.done_rows, job.total                 # live counters
    >>> job.live_frame().tail()                  # rows finished so far
    >>> job.cancel(); job.wait()                 # the (partial) result frame
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError

__all__ = ["LIVE_ROWS", "BatchJob", "CancellablePool", "not_run"]

STATES = ("ready", "running", "cancelling", "finished", "cancelled", "failed")
LIVE_ROWS = 1000
"""How many of the latest finished rows a job keeps for ``live_frame``."""


class CancellablePool:
    """A pool wrapper whose ``cancel()`` stops a batch run promptly (see the module docstring).

    It forwards everything to the wrapped pool; ``submit`` returns its own future, settled
    from the pool's, so that ``cancel()`` can settle it at once with ``KeyboardInterrupt``.
    ``on_chunk(inputs, result)`` (optional) sees every finished chunk's Arrow tables.
    """

    def __init__(self, pool: Any, on_chunk: Callable[[Any, Any], None] | None = None) -> None:
        self._pool = pool
        self._on_chunk = on_chunk
        self._lock = threading.Lock()
        self._pending: dict[cf.Future, Any] = {}
        self.cancelled = False

    def __getattr__(self, name: str) -> Any:  # size, kind, _max_workers...
        return getattr(self._pool, name)

    @property
    def name(self) -> str:
        return str(getattr(self._pool, "name", type(self._pool).__name__))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        with self._lock:
            if self.cancelled:
                raise KeyboardInterrupt("the run was cancelled")
            inner = self._pool.submit(fn, *args, **kwargs)
            outer: cf.Future = cf.Future()
            self._pending[outer] = inner
        inputs = args[-1] if args else None
        inner.add_done_callback(lambda f: self._settle(outer, f, inputs))
        return outer

    def _settle(self, outer: cf.Future, inner: Any, inputs: Any) -> None:
        with self._lock:
            if self._pending.pop(outer, None) is None:
                return  # cancelled meanwhile
        try:
            result = inner.result()
        except BaseException as exc:
            _set(outer, exc=exc)
            return
        if self._on_chunk is not None:
            with contextlib.suppress(Exception):  # the live view must never break the run
                self._on_chunk(inputs, result)
        _set(outer, result=result)

    def cancel(self) -> None:
        """Settle every chunk in flight with ``KeyboardInterrupt``, cancel their pool tasks
        and refuse new ones."""
        with self._lock:
            self.cancelled = True
            pending, self._pending = self._pending, {}
        for outer, inner in pending.items():
            _set(outer, exc=KeyboardInterrupt("the run was cancelled"))
            inner.cancel()


def _set(future: cf.Future, result: Any = None, exc: BaseException | None = None) -> None:
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except cf.InvalidStateError:
        pass


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
        self._chunks: deque[tuple[Any, Any]] = deque()  # the latest chunks, for live_frame
        self._chunks_lock = threading.Lock()
        self._pool: CancellablePool | None = None
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
        from dspex_lab.batch.run import resolve_pool

        pool, _ = resolve_pool(self.run_options.pop("pool", "general"))
        self._pool = CancellablePool(pool, self._on_chunk)
        self.state = "running"
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name="dspex-batch-job", daemon=True)
        self._unsubscribe = telemetry.subscribe(self._on_event)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the run promptly; finished rows are kept (see the module docstring)."""
        if self.state == "running" and self._pool is not None:
            self.state = "cancelling"
            self.version += 1
            self._pool.cancel()

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
            self.result = run(self.program, self.data, pool=self._pool, **self.run_options)
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
        cancelled = self._pool is not None and self._pool.cancelled
        if self.exception is not None:
            self.state = "failed"
        else:
            self.state = "cancelled" if cancelled else "finished"
        if self.result is not None and "error" in getattr(self.result, "columns", ()):
            skipped = not_run(self.result)
            self.not_run = int(skipped.sum())
            self.done_rows = len(self.result) - self.not_run
            self.errors = int(self.result["error"].notna().sum()) - self.not_run
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

    def _on_chunk(self, inputs: Any, result: Any) -> None:
        with self._chunks_lock:  # chunks finish in the pool's threads
            self._chunks.append((inputs, result))
            kept = sum(r.num_rows for _, r in self._chunks)
            while len(self._chunks) > 1 and kept - self._chunks[0][1].num_rows >= LIVE_ROWS:
                kept -= self._chunks.popleft()[1].num_rows
        self.version += 1

    # -- the rows so far -------------------------------------------------------------------------
    def live_frame(self, max_rows: int | None = 20) -> Any:
        """The latest finished rows (inputs, outputs, error, latency, tokens, cost) as a
        DataFrame, most recent last; ``max_rows=None`` for all that are kept (the last
        ``LIVE_ROWS`` or so: the result frame has every row)."""
        import pandas as pd

        tables, rows = [], 0
        with self._chunks_lock:
            chunks = list(self._chunks)
        for inputs, result in reversed(chunks):
            tables.append(_side_by_side(inputs, result))
            rows += result.num_rows
            if max_rows is not None and rows >= max_rows:
                break
        if not tables:
            return pd.DataFrame()
        import pyarrow as pa

        frame = pa.concat_tables(reversed(tables), promote_options="default").to_pandas()
        return frame if max_rows is None else frame.tail(max_rows).reset_index(drop=True)


def not_run(frame: Any) -> Any:
    """A boolean mask (numpy) of the rows of a result frame that never ran (cancelled,
    interrupted, budget reached...: ``classify_error`` says ``not_run``)."""
    import numpy as np

    from dspex_lab.widgets.triage import classify_error

    return np.array([classify_error(e) == "not_run" for e in frame["error"].tolist()],
                    dtype=bool)


def _side_by_side(inputs: Any, result: Any) -> Any:
    """The chunk's input columns next to its result columns (outputs renamed on a clash)."""
    import pyarrow as pa

    if not isinstance(inputs, pa.Table) or inputs.num_rows != result.num_rows:
        return result
    names = list(inputs.column_names)
    out = [n if n not in names else f"{n}_pred" for n in result.column_names]
    return pa.Table.from_arrays([*inputs.columns, *result.columns], names=names + out)

