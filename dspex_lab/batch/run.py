"""``run``: a signature or DSPy program over every row of a DataFrame, in worker processes.

    >>> import dspex_lab
    >>> df = dspex_lab.run("question -> answer", questions)            # a DataFrame
    >>> df[["question", "answer", "error", "latency_ms", "cost"]].head()
    >>> df.attrs["usage"]                     # rows, errors, tokens, cost, wall_s, rows_per_s

What happens: the input columns are checked and every row validated in the kernel (no LM call
for a bad one); rows already answered come from the result cache (the ``native`` route) or,
with ``resume=True``, from the run's spill; the rest travel to the pool as Arrow chunks, run
with many LM calls in flight per worker, and come back as Arrow. Each finished chunk goes to
the cache and the spill at once, so an interrupt, a crash or a kernel restart loses nothing:
``dspex_lab.last_run()`` holds the latest (possibly partial) frame, and a re-run computes only
what is missing. ``cancel=`` (a ``threading.Event``) stops a run from another thread, and
``on_part=`` sees every finished part as a DataFrame (live views, early looks).

Telemetry: ``run.started``, ``run.progress``, ``run.finished``, one ``router.route`` per
chunk, one columnar ``lm.calls`` event per finished part (see ``telemetry.per_call``), and
one ``run.skipped`` event per group of rows that made no LM call (inputs that do not fit the
signature; rows not run because of an interrupt, a cancel, the budget or an open circuit).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dspex_lab import accessor as _accessor
from dspex_lab import telemetry
from dspex_lab import trace as _trace
from dspex_lab.batch import recording as _replay
from dspex_lab.batch import status as _status
from dspex_lab.batch.chunk import ChunkOptions, ChunkTask, run_chunk
from dspex_lab.batch.concurrency import SharedLimit
from dspex_lab.batch.frame import (
    META_COLUMNS,
    assemble,
    ordered,
    part_frame,
    result_part,
    usage_totals,
    with_rows,
)
from dspex_lab.batch.inputs import InputBatch, RowKeys, prepare_inputs, row_keys
from dspex_lab.batch.options import RunOptions, pool_processes, pool_slots, resolve_pool
from dspex_lab.batch.progress import Progress
from dspex_lab.batch.retry import BreakerConfig, RetryPolicy
from dspex_lab.batch.schedule import Budget, RunCancelled, Scheduler
from dspex_lab.batch.spill import ROW, Spill
from dspex_lab.errors import BudgetExceeded, ConfigurationError, RunError
from dspex_lab.programs import Program, as_program
from dspex_lab.router import register

__all__ = ["RunOptions", "last_run", "run"]

register("run", "pool", run_chunk, pool="general",
         doc="run: DataFrame rows in Arrow chunks on a worker pool (cache hits: native)")

_LAST: dict[str, Any] = {"frame": None}
_CACHE_SLICE = 256  # rows per cache read or write
_CALL_COLUMNS = ("latency_ms", "prompt_tokens", "completion_tokens", "cost", "error", "cached",
                 "status", "error_type")
_CALL_TYPES = {"latency_ms": pa.float32(), "prompt_tokens": pa.int32(),
               "completion_tokens": pa.int32()}


def last_run() -> Any:
    """The frame of the latest ``run`` in this kernel: complete, or partial after an error,
    an interrupt or a stop (rows not run have an ``error``).

    >>> dspex_lab.last_run()["error"].isna().sum()
    """
    return _LAST["frame"]


def run(program: Any, data: Any, *, columns: Mapping[str, str] | None = None,
        concurrency: int | None = None, pool: Any = "general", lm: Any = None,
        on_error: str = "record", cache: bool = True, progress: bool = True,
        adapter: Any = None, temperature: float | None = None,
        budget_usd: float | None = None, on_budget: str = "stop", resume: bool = False,
        spill: Any = None, module: str = "predict", tools: Sequence[Callable[..., Any]] = (),
        max_iters: int | None = None, module_options: Mapping[str, Any] | None = None,
        transport: str = "dspy",
        max_retries: int = 5, retry: RetryPolicy | None = None, timeout: float | None = 60.0,
        rpm: float | None = None, tpm: float | None = None,
        circuit_breaker: bool | BreakerConfig = True, chunk_size: int | None = None,
        cancel: threading.Event | None = None,
        on_part: Callable[[Any], None] | None = None, trace: bool = False) -> Any:
    """Run ``program`` on every row of ``data``; returns a pandas DataFrame.

    ``program``: a signature string, ``Signature``, ``dspy.Signature`` class (run as it is),
    ``dspy.Module`` or ``Program``; for signatures ``module`` picks ``predict``/``cot``/
    ``react`` (with ``tools=[...]`` and ``max_iters``, default DSPy's), and ``module_options``
    are that DSPy module's own keyword arguments (Predict's config, ``rationale_field``). A
    module's inputs are its ``forward`` parameters; what it returns fills the row (a
    Prediction: its fields; a dict: its keys; any other value: one ``output`` column).
    ``data``: a DataFrame, an Arrow table (or anything with ``__arrow_c_stream__``) or a list
    of dicts; input fields read the columns of the same name, or ``columns={"field":
    "column"}``.

    The result holds the input rows in order plus one column per output field (``reasoning``
    too for CoT), ``error``, ``latency_ms``, ``prompt_tokens``, ``completion_tokens``, ``cost``,
    ``cached``, and ``status`` (``ok``/``error``/``invalid``/``not_run``/``cached``),
    ``error_type`` and ``attempts`` (see ``dspex_lab.batch.status``); ``df.attrs["usage"]``
    has the totals (rows by status among them). Options:

    - ``concurrency``: LM calls in flight across all workers (default 16 per worker, at most
      64), adapted down on 429s (AIMD); once the provider's rate-limit headers tell its limits,
      new calls are paced to fit them (``usage["paced"]``: calls that waited; see
      ``batch.ratelimits``); ``rpm``/``tpm`` cap requests/tokens per minute on our side.
    - ``on_error``: ``"record"`` (errors in the ``error`` column) or ``"raise"`` (``RunError``
      after the batch, listing the failed rows; the frame is in ``last_run()``).
    - retries: 429/5xx/timeouts, ``max_retries`` times with backoff + jitter and Retry-After
      (``retry=RetryPolicy(...)`` for more control); ``circuit_breaker`` pauses calls to an
      LM that keeps failing, tries one again after a cooldown and carries on if it recovered
      (``usage["circuit_recoveries"]``), else stops (``BreakerConfig(...)`` to tune, False to
      disable).
    - ``cache``: answer rows seen before (same program, inputs, LM and options) from the
      result cache; ``resume``/``spill``: re-attach to the spill of an interrupted run.
    - ``budget_usd`` with ``on_budget="stop"`` (no new work once the projected spend would pass
      it; rows left get ``BudgetExceeded``) or ``"warn"``.
    - ``transport="fast"``: Predict/CoT on OpenAI-compatible endpoints skip ``dspy.LM``'s
      per-call overhead (see ``dspex_lab.batch.transport``); default: the real ``dspy.LM``.
    - ``cancel``: a ``threading.Event``; setting it (from another thread: a button, a timer)
      stops the run within a fraction of a second: queued and running chunks are cancelled,
      finished rows are kept, the rest get a ``Cancelled`` error, and the frame comes back
      with ``usage["status"] == "cancelled"``.
    - ``on_part``: called with a DataFrame of each part of rows as it finishes (input fields,
      outputs and bookkeeping columns, indexed like ``data``); rows that did not run are not
      passed. An exception in it is reported once as a warning and the run goes on.
    - ``trace``: keep every row's LM calls (failed rows' are always kept): open one with
      ``df.dspex.trace(row)`` (see ``dspex_lab.trace``).

    >>> df = run("question -> answer", [{"question": "What is 2 + 2?"}], progress=False)
    >>> df.loc[0, "answer"], df.attrs["usage"]["rows"]
    ('4', 1)
    """
    from dspex_lab.kernel_settings import capture

    breaker = circuit_breaker if isinstance(circuit_breaker, BreakerConfig) else BreakerConfig(
        enabled=bool(circuit_breaker))
    options = RunOptions(settings=capture(adapter),
        columns=columns, concurrency=concurrency, pool=pool, on_error=on_error, cache=cache,
        progress=progress, adapter=adapter, temperature=temperature, budget_usd=budget_usd,
        on_budget=on_budget, resume=resume, spill=spill, transport=transport,
        retry=retry or RetryPolicy(max_retries=max_retries), timeout=timeout, rpm=rpm, tpm=tpm,
        breaker=breaker, chunk_size=chunk_size, cancel=cancel, on_part=on_part)
    from dspex_lab.calls import resolve_lm

    module_options = dict(module_options or {})
    if max_iters is not None:
        if module != "react":
            raise ConfigurationError(f"max_iters= is for module='react'; module={module!r} "
                                     "has no iterations. Pass module='react', or drop it.")
        module_options["max_iters"] = max_iters
    prog = as_program(program, module=module, tools=tools, **module_options)
    spec = resolve_lm(lm)
    batch = prepare_inputs(prog, data, columns)
    return _Run(prog, spec, batch, options, trace=trace).execute()


class _Run:
    """One execution of ``run``: state, bookkeeping and the result."""

    def __init__(self, program: Program, spec: Any, batch: InputBatch, options: RunOptions,
                 trace: bool = False) -> None:
        from dspex_lab.calls import lm_identity

        self.program, self.spec, self.batch, self.options = program, spec, batch, options
        self.model = str(getattr(spec, "model", spec))
        self.replay = _replay.current()
        self.keys, self.invalid = row_keys(program, batch.table, lm_identity(spec),
                                           adapter=options.cache_adapter,
                                           temperature=options.temperature)
        self.run_id = _run_id(self.keys, self.invalid, program, options)
        self.n = batch.num_rows
        self.done = np.zeros(self.n, dtype=bool)
        self.parts: list[pa.Table] = []
        self.counts = {"rows": 0, "finished": 0, "errors": 0, "tokens": 0, "cost": 0.0,
                       "retries": 0, "rate_limited": 0, "paced": 0, "fast_rows": 0, "not_run": 0,
                       "circuit_recoveries": 0}
        self.notes: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.pool_name = options.pool if isinstance(options.pool, str) else None
        self.route = "pool"
        self.bar: Progress | None = None
        self.spill: Spill | None = None
        self.budget: Budget | None = None
        self.trace = trace

    # -- the phases ---------------------------------------------------------------------------

    def execute(self) -> Any:
        status = "failed"
        try:
            self.spill = Spill.open(self.options.spill, self.run_id, self.n,
                                    self.options.resume,
                                    {"program": repr(self.program), "model": self.model})
            self._answer_without_calls()
            telemetry.emit("run.started", run_id=self.run_id, rows=self.n,
                           pending=int((~self.done).sum()), cached=self.counts["rows"],
                           program=repr(self.program), model=self.model, pool=self.pool_name,
                           transport=self.options.transport)
            self.bar = Progress(self.n, self.options.progress, initial=self.counts["finished"],
                                errors=self.counts["errors"])
            status = self._compute() if not self.done.all() else "finished"
        finally:
            frame = self._finish(status)
        if status == "interrupted":
            finished = self.n - self.counts["not_run"]
            warnings.warn(f"The run was interrupted: {finished:,} of {self.n:,} rows finished "
                          "and are returned (also in dspex_lab.last_run()); run it again to "
                          "compute only the rest.", stacklevel=3)
        self._maybe_raise(frame)
        return frame

    def _answer_without_calls(self) -> None:
        """Rows that need no LM call: invalid inputs, resumed rows, cache hits."""
        if self.invalid:
            rows = sorted(self.invalid)
            self._add(result_part(rows, {}, errors=[self.invalid[r] for r in rows],
                                  status=_status.INVALID, error_type="ValidationError"),
                      "native", skipped="input")
        if self.options.resume and self.spill is not None:
            self._resume()
        if self.options.cache and not (self.replay and self.replay.mode == "record"):
            self._from_cache()

    def _resume(self) -> None:
        table = self.spill.load() if self.spill else None
        if table is None:
            return
        table = table.filter(pc.is_null(table.column("error")))
        if "status" not in table.column_names:  # a spill written before the status columns
            for name, column in _status.part_columns(table.num_rows, _status.OK, None,
                                                     None).items():
                table = table.append_column(name, column)
        rows = table.column(ROW).to_numpy()
        keep = ~self.done[rows]
        if keep.any():
            self.notes["resumed"] = int(keep.sum())
            self._add(table.filter(pa.array(keep)), "native", spill=False)

    def _from_cache(self) -> None:
        """Cache hits, looked up a slice of rows at a time (one part per slice)."""
        from dspex_lab.cache import get_cache

        cache, found = get_cache(), 0
        pending = np.flatnonzero(~self.done & self.keys.valid)
        for start in range(0, len(pending), _CACHE_SLICE):
            keys = {int(i): self.keys[i] for i in pending[start:start + _CACHE_SLICE]}
            hits = cache.get_many(list(keys.values()), remember=False)
            rows = [i for i, key in keys.items() if key in hits]
            if not rows:
                continue
            values = [hits[keys[i]].get("outputs") or {} for i in rows]
            names = list(dict.fromkeys(k for v in values for k in v))
            outputs = {n: [v.get(n) for v in values] for n in names}
            self._add(result_part(rows, outputs, errors=[None] * len(rows), cached=True),
                      "native")
            found += len(rows)
        if found:
            telemetry.emit("router.route", operation="run", route="native",
                           reason="cached answers", pool=None, rows=found, run_id=self.run_id)

    def _compute(self) -> str:
        pool, self.pool_name = resolve_pool(self.options.pool)
        slots = pool_slots(pool)
        self.route = getattr(pool, "kind", "pool")
        total = self.options.concurrency or min(64, 16 * slots)
        limit = SharedLimit(total, min(slots, total))
        opts = self.options
        chunk_options = ChunkOptions(adapter=opts.adapter, temperature=opts.temperature,
                                     timeout=opts.timeout, retry=opts.retry,
                                     breaker=opts.breaker, transport=opts.transport,
                                     replay=self.replay, settings=opts.settings,
                                     trace=self.trace)
        share = min(slots, total)
        processes = pool_processes(pool, share)
        execution = uuid.uuid4().hex

        def make_task(concurrency: int, generation: int) -> ChunkTask:
            return ChunkTask(self.program, self.spec, chunk_options, concurrency,
                             rpm=opts.rpm / share if opts.rpm else None,
                             tpm=opts.tpm / share if opts.tpm else None,
                             generation=generation, parallel=processes,
                             execution=execution)

        budget = self.budget = Budget(opts.budget_usd, opts.on_budget) if opts.budget_usd else None
        scheduler = Scheduler(pool, make_task, self.batch.table, np.flatnonzero(~self.done),
                              self._on_chunk, self._on_chunk_error, slots=share, limit=limit,
                              budget=budget, chunk_size=opts.chunk_size,
                              on_submit=self._on_submit, cancel=opts.cancel)
        status, not_run = scheduler.run()
        self.notes["concurrency"] = {"start": total, "end": int(limit.total),
                                     "decreases": limit.decreases}
        self._not_run(status, not_run)
        return status

    # -- bookkeeping --------------------------------------------------------------------------

    def _on_submit(self, rows: int) -> None:
        telemetry.emit("router.route", operation="run", route=self.route,
                       reason="runs DSPy in a worker", pool=self.pool_name, rows=rows,
                       run_id=self.run_id)

    def _on_chunk(self, rows: np.ndarray, table: pa.Table, stats: dict[str, Any]) -> None:
        _trace.collect(self.run_id, rows, table.schema.metadata)
        part = with_rows(table.replace_schema_metadata(None), rows)
        for key in ("retries", "rate_limited", "paced", "fast_rows", "circuit_recoveries"):
            self.counts[key] += int(stats.get(key) or 0)
        if stats.get("fast_reason"):
            self.notes["fast_transport"] = stats["fast_reason"]
        if stats.get("circuit_open"):
            self.notes["circuit"] = stats.get("circuit_message")
        self._add(part, self.route)
        cost = float(pc.sum(table.column("cost")).as_py() or 0.0)
        if self.budget is not None:
            self.budget.add(cost, len(rows))
            if self.budget.mode == "warn" and self.budget.spent > self.budget.usd \
                    and "budget_warned" not in self.notes:
                self.notes["budget_warned"] = True
                warnings.warn(f"The run has spent ${self.budget.spent:.4f}, over its budget of "
                              f"${self.budget.usd:.4f} (on_budget='warn': it goes on).",
                              stacklevel=2)
        if self.options.cache:
            self._cache(rows, table)

    def _on_chunk_error(self, rows: np.ndarray, exc: BaseException) -> None:
        message, skipped = f"{type(exc).__name__}: {exc}", None
        status, kind, attempts = _status.ERROR, type(exc).__name__, None  # calls: unknown
        if isinstance(exc, KeyboardInterrupt):
            message = f"Interrupted: the run was interrupted ({exc}); this row did not run."
            skipped, status, kind, attempts = "not_run", _status.NOT_RUN, "Interrupted", 0
        elif isinstance(exc, RunCancelled):
            message = f"Cancelled: {exc}; this row did not finish."
            skipped, status, kind, attempts = "not_run", _status.NOT_RUN, "Cancelled", 0
        self._add(result_part(list(rows), {}, errors=[message] * len(rows), status=status,
                              error_type=kind, attempts=attempts), self.route,
                  spill=False, skipped=skipped)

    def _not_run(self, status: str, rows: np.ndarray) -> None:
        if not len(rows):
            return
        kind = {"budget": "BudgetExceeded", "circuit_open": "CircuitOpen",
                "interrupted": "Interrupted", "cancelled": "Cancelled"}.get(status, "PoolError")
        if status == "budget":
            spent = self.budget.spent if self.budget else 0.0
            message = (f"BudgetExceeded: not run; the run stopped at ${spent:.4f} to stay "
                       f"within budget_usd={self.options.budget_usd}.")
            warnings.warn(f"The budget of ${self.options.budget_usd} was reached: "
                          f"{len(rows):,} rows were not run.", stacklevel=4)
        elif status == "circuit_open":
            message = f"CircuitOpen: {self.notes.get('circuit') or 'the LM kept failing'}"
            warnings.warn(f"The circuit breaker opened: {len(rows):,} rows were not sent. "
                          f"{self.notes.get('circuit')}", stacklevel=4)
        elif status == "interrupted":
            message = "Interrupted: the run was interrupted before this row ran."
        elif status == "cancelled":
            message = "Cancelled: the run was cancelled before this row ran."
        else:
            message = f"PoolError: the pool stopped working ({status}); this row did not run."
        self._add(result_part(list(rows), {}, errors=[message] * len(rows),
                              status=_status.NOT_RUN, error_type=kind), "native",
                  spill=False, skipped="not_run")

    def _add(self, part: pa.Table, route: str, spill: bool = True,
             skipped: str | None = None) -> None:
        """Record a result part: progress, telemetry, spill, ``on_part``. ``skipped``: why
        its rows made no LM call, ``"input"`` (inputs that do not fit: a result, shown to
        ``on_part``) or ``"not_run"``; None when they have results (answered, failed in the
        LM, cached, resumed)."""
        rows = part.column(ROW).to_numpy()
        self.done[rows] = True
        self.parts.append(part)
        by_status = _status.counts(part.column("status"))
        errors = by_status[_status.ERROR] + by_status[_status.INVALID]
        finished = _status.finished(by_status)
        p = int(pc.sum(part.column("prompt_tokens")).as_py() or 0)
        c = int(pc.sum(part.column("completion_tokens")).as_py() or 0)
        cost = float(pc.sum(part.column("cost")).as_py() or 0.0)
        self.counts["rows"] += part.num_rows
        self.counts["finished"] += finished
        self.counts["errors"] += errors
        self.counts["tokens"] += p + c
        self.counts["cost"] += cost
        if spill and self.spill is not None:
            self.spill.write(part)
        if skipped is None:
            self._emit_calls(part, route)
        else:
            self._emit_skipped(part, skipped)
        if skipped != "not_run":
            self._show_part(part, rows)
        if self.bar is not None:
            self.bar.update(finished, errors, p + c, cost, not_run=by_status[_status.NOT_RUN],
                            retries=self.counts["retries"] - self.bar.retries)  # one count
        elapsed = time.perf_counter() - self.started
        telemetry.emit("run.progress", run_id=self.run_id, rows_done=self.counts["finished"],
                       rows=self.n, errors=self.counts["errors"],
                       not_run=self.counts["not_run"], tokens=self.counts["tokens"],
                       cost=self.counts["cost"], retries=self.counts["retries"],
                       rows_per_s=self.counts["finished"] / elapsed if elapsed else 0.0)

    def _emit_calls(self, part: pa.Table, route: str) -> None:
        """One columnar ``lm.calls`` event for the part: its bookkeeping columns, copied into
        compact types (about 30 bytes a row), so the buffer never pins the part's outputs."""
        calls = pa.table({"row": _copy(part.column(ROW), pa.int32()),
                          **{name: _copy(part.column(name), _CALL_TYPES.get(name))
                             for name in _CALL_COLUMNS}})
        telemetry.emit(telemetry.CALLS, operation="run", run_id=self.run_id, model=self.model,
                       route=route, pool=None if route == "native" else self.pool_name,
                       calls=calls)

    def _emit_skipped(self, part: pa.Table, reason: str) -> None:
        """Rows that made no LM call: one ``run.skipped`` event (rows, reason, first error)."""
        if reason == "not_run":
            self.counts["not_run"] += part.num_rows
        telemetry.emit("run.skipped", run_id=self.run_id, rows=part.num_rows, reason=reason,
                       error=part.column("error")[0].as_py() if part.num_rows else None)

    def _show_part(self, part: pa.Table, rows: np.ndarray) -> None:
        """Hand the part to ``on_part`` as a DataFrame (a failing callback warns once)."""
        callback = self.options.on_part
        if callback is None:
            return
        try:
            callback(part_frame(self.batch, part, rows))
        except Exception as exc:  # the user's callback must not lose the run
            if "on_part_failed" not in self.notes:
                self.notes["on_part_failed"] = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"on_part raised {type(exc).__name__}: {exc}; the run goes on "
                              "(later failures are not reported).", stacklevel=2)

    def _cache(self, rows: np.ndarray, table: pa.Table) -> None:
        """Store the chunk's answered rows in the result cache (on disk), a slice at a time so
        that the Python copies stay small."""
        from dspex_lab.cache import get_cache

        cache = get_cache()
        names = [c for c in table.column_names if c not in META_COLUMNS]
        for start in range(0, table.num_rows, _CACHE_SLICE):
            part = table.slice(start, _CACHE_SLICE)
            outputs = part.select(names).to_pylist()
            errors, p, c, cost = (part.column(name).to_pylist() for name in
                                  ("error", "prompt_tokens", "completion_tokens", "cost"))
            items = {}
            for i, row in enumerate(rows[start:start + _CACHE_SLICE]):
                key = self.keys[row]
                if errors[i] is None and key is not None:
                    items[key] = {"outputs": outputs[i], "prompt_tokens": p[i],
                                  "completion_tokens": c[i], "cost": cost[i],
                                  "model": self.model}
            cache.put_many(items, remember=False)

    def _finish(self, status: str) -> Any:
        self.keys = None  # 32 bytes a row, not needed any more: down before the frame is built
        missing = np.flatnonzero(~self.done)
        if len(missing):  # an exception stopped the run: the rows left did not run
            self._add(result_part(list(missing), {}, errors=[
                f"NotRun: the run stopped ({status}) before this row ran."] * len(missing),
                status=_status.NOT_RUN, error_type="NotRun"),
                "native", spill=False, skipped="not_run")
        if self.bar is not None:
            self.bar.finish(status)
        results = ordered(self.parts, self.program.output_names, self.n)
        self.parts = []  # the results hold what is still needed
        frame = assemble(self.batch, results)
        usage = usage_totals(results, time.perf_counter() - self.started, run_id=self.run_id,
                             status=status, model=self.model, retries=self.counts["retries"],
                             rate_limited=self.counts["rate_limited"],
                             paced=self.counts["paced"],
                             circuit_recoveries=self.counts["circuit_recoveries"],
                             fast_rows=self.counts["fast_rows"], **self.notes)
        frame.attrs["usage"] = usage
        frame.attrs["run_id"] = self.run_id
        _trace.remember(self.run_id, frame.index)
        _accessor.register()
        _LAST["frame"] = frame
        if self.spill is not None:
            self.spill.finish(status, usage)
        telemetry.emit("run.finished", **{k: v for k, v in usage.items()
                                          if not isinstance(v, dict)})
        return frame

    def _maybe_raise(self, frame: Any) -> None:
        usage = frame.attrs["usage"]
        if usage["status"] == "budget" and self.options.on_error == "raise":
            raise BudgetExceeded(f"The run stopped at its budget of ${self.options.budget_usd}; "
                                 "the partial frame is in dspex_lab.last_run().")
        if self.options.on_error == "raise" and (usage["errors"] or usage["not_run"]):
            failed = [int(i) for i in np.flatnonzero(frame["error"].notna().to_numpy())]
            first = str(frame["error"].iloc[failed[0]])
            raise RunError(failed, first, usage["rows"])


def _copy(column: pa.ChunkedArray, type_: pa.DataType | None = None) -> pa.Array:
    """A contiguous copy of ``column`` (cast to ``type_``) that shares no buffer with it."""
    column = column.cast(type_) if type_ is not None else column
    return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)


def _run_id(keys: RowKeys, invalid: dict[int, str], program: Program,
            options: RunOptions) -> str:
    """A fingerprint of the program, LM, options and every row's inputs."""
    if not len(keys):
        return uuid.uuid4().hex[:16]
    digest = hashlib.sha256()
    digest.update(json.dumps([program.key, options.cache_adapter, options.temperature,
                              options.transport, sorted(invalid.items())],
                             default=str).encode())
    digest.update(keys.digests.tobytes())
    return digest.hexdigest()[:16]
