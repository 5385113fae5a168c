"""The worker side of a batch run: one chunk of rows (an Arrow table) in, results out.

A chunk runs on a per-process event loop with many LM calls in flight at once, so throughput
is bound by the LM, not by the number of workers. Each row goes through the same steps:
circuit breaker -> rate limits -> a hold while the provider's rate-limit headers say there
is no room (``batch.ratelimits``) -> a concurrency slot (AIMD) -> the call -> on a retryable
failure, backoff and again. Calls go through the real ``dspy.LM`` in a thread pool (any
module), or, with ``transport="fast"``, through ``batch.transport`` (Predict/ChainOfThought on
OpenAI-compatible endpoints).

    >>> task = ChunkTask(as_program("question -> answer"), lm_spec(), ChunkOptions())
    >>> table = run_chunk(task, pa.table({"question": ["hi"]}))
    >>> table.column_names
    ['answer', 'error', 'latency_ms', 'prompt_tokens', 'completion_tokens', 'cost', 'status',
     'error_type', 'attempts']

Custom programs may take over a row: a module with ``async def __dspex_arun_row__(self,
inputs, lm) -> dict`` is called with the row's inputs and the ``dspy.LM`` (inside
``dspy.context(lm=lm)``); retries, limits and usage tracking still wrap it.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import contextvars
import copy
import functools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dspex_lab import trace as _trace
from dspex_lab.batch import recording as _replay
from dspex_lab.batch.concurrency import AIMDLimiter, TokenBucket
from dspex_lab.batch.frame import to_arrow_values
from dspex_lab.batch.inputs import input_rows
from dspex_lab.batch.ratelimits import Pacer, hint_from_error
from dspex_lab.batch.retry import BreakerConfig, CircuitBreaker, RetryPolicy, classify
from dspex_lab.batch.status import ERROR, NOT_RUN, OK, part_columns
from dspex_lab.errors import LMTimeout
from dspex_lab.kernel_settings import KernelSettings
from dspex_lab.programs import Program
from dspex_lab.redaction import redact_text

__all__ = ["ChunkOptions", "ChunkTask", "chunk_stats", "run_chunk"]



@dataclass(frozen=True)
class ChunkOptions:
    """How every row of a run is called (the same for all chunks of the run)."""

    adapter: Any = None  # a short name or an adapter instance; None: the settings' adapter
    temperature: float | None = None
    timeout: float | None = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    transport: str = "dspy"
    replay: _replay.ReplayConfig | None = None
    settings: KernelSettings | None = None  # the kernel's dspy settings (kernel_settings)
    trace: bool = False  # keep every row's trace (failed rows' always): dspex_lab.trace

    def effective_adapter(self) -> Any:
        """The adapter rows run with: ``adapter``, else the kernel's (None: DSPy's)."""
        if self.adapter is not None:
            return self.adapter
        return self.settings.adapter if self.settings is not None else None

    def lm_overrides(self) -> dict[str, Any]:
        """``dspy.LM`` settings for batch calls: dspex_lab retries, and the result cache
        replaces DSPy's per-call cache."""
        out: dict[str, Any] = {"num_retries": 0, "cache": False}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out


@dataclass(frozen=True)
class ChunkTask:
    """One chunk's work order: what to run, with which LM, and this chunk's share of the
    run's concurrency and rate limits (``rpm``/``tpm`` per minute; the provider's, learned
    from its headers, split over ``parallel`` chunks)."""

    program: Program
    lm: Any
    options: ChunkOptions = field(default_factory=ChunkOptions)
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    generation: int = 0
    parallel: int = 1  # processes running the run's chunks at once (sharing the limits)
    execution: str = ""  # one run's id: its chunks in a process share one circuit breaker


@dataclass(slots=True)
class _Row:
    outputs: dict[str, Any] | None = None
    error: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    status: str = OK
    error_type: str | None = None
    attempts: int = 0  # LM calls tried, retries included
    trace: dict[str, Any] | None = None  # dspex_lab.trace: kept for failed rows (or all)


def run_chunk(task: ChunkTask, table: pa.Table) -> pa.Table:
    """Run every row of ``table`` (columns named like the input fields); returns one result
    row per input row, in order, with the chunk's stats in the schema metadata (``dspex``)."""
    _speed_up_dspy()
    rows = input_rows(table)  # as df.to_dict("records") gives them (pd.Timestamp)
    future = asyncio.run_coroutine_threadsafe(_run_rows(task, rows), _loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C / cancellation: stop the calls in flight
        raise


async def _run_rows(task: ChunkTask, rows: list[dict[str, Any]]) -> pa.Table:
    state = _ChunkState(task)
    sig = task.program.signature
    with _replay.activated(task.options.replay):
        call = _trace.traced_call(_runner(task, state))
        results = await asyncio.gather(*(_trace.traced_row(
            state.run_row, call, _coerced(sig, row), task.options.trace) for row in rows))
    return _to_table(task.program, results, state.stats())


def _coerced(sig: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The row as the kernel validated it (``3.0`` for an ``int`` field is ``3``, ...)."""
    if sig is None:
        return row
    try:
        return sig.validate_inputs(row)
    except Exception:  # the kernel already reported it; let the call say what it says
        return row


class _ChunkState:
    """Limits, breaker and counters shared by the rows of one chunk."""

    def __init__(self, task: ChunkTask) -> None:
        opts = task.options
        self.task = task
        self.policy = opts.retry
        self.limiter = AIMDLimiter(task.concurrency)  # the kernel grows the share
        self.breaker = _breaker(task)
        self.pacer = _pacer(task)
        self.paced = 0
        self.rpm = TokenBucket(task.rpm / 60) if task.rpm else None
        self.tpm = TokenBucket(task.tpm / 60) if task.tpm else None
        self.rate_limited = self.retries = self.attempts = 0
        self.fast_rows = 0
        self.fast_reason: str | None = None
        self.deadline = _call_deadline(task)

    async def run_row(self, call: Any, inputs: dict[str, Any]) -> _Row:
        start: float | None = None  # from the first call: waiting for a slot is not latency
        row, attempt = _Row(), 0
        while True:
            admitted = await self.breaker.admit()
            if admitted is None:
                row.error = f"CircuitOpen: {self.breaker.message()}"
                row.error_type, row.status = "CircuitOpen", ERROR if row.attempts else NOT_RUN
                break
            if self.rpm is not None:
                await self.rpm.take(1)
            if self.tpm is not None:
                await self.tpm.take(0)
            error: BaseException | None = None
            async with self.limiter.slot() as generation, self.pacer.request() as waited:
                self.paced += waited  # the pacer's turn comes last: right before sending
                start = start or time.perf_counter()
                self.attempts += 1
                row.attempts += 1
                try:
                    outputs, p, c, cost, hint = await self._bounded(call, inputs)
                except Exception as exc:
                    error = exc
            if error is None:
                self.pacer.observe(hint, p + c)
                self.limiter.success()
                self.breaker.record(True, trial=admitted == "trial")
                if self.tpm is not None:
                    self.tpm.charge(p + c)
                row.outputs, row.prompt_tokens, row.completion_tokens, row.cost = (
                    outputs, row.prompt_tokens + p, row.completion_tokens + c, row.cost + cost)
                break
            self._spent(row, error)
            failure = classify(error)
            self.pacer.observe(hint_from_error(error))
            if failure.rate_limited:
                self.rate_limited += 1
                self.limiter.overload(generation)
                if admitted == "trial":  # a 429 says nothing of the LM's health
                    self.breaker.inconclusive()
            elif failure.lm_down:
                self.breaker.record(False, _describe(error), trial=admitted == "trial")
            elif admitted == "trial":  # any other answer: the LM is up
                self.breaker.record(True, trial=True)
            wait = self.policy.backoff(attempt, failure.retry_after)
            elapsed = time.perf_counter() - start
            if self.policy.gives_up(attempt, elapsed, wait, failure):
                row.error, row.error_type = _describe(error), type(error).__name__
                if failure.retryable and row.attempts > 1:
                    row.error += f" (gave up after {row.attempts} attempts in {elapsed:.1f} s)"
                row.status = ERROR
                break
            self.retries += 1
            await asyncio.sleep(wait)
            attempt += 1
        row.latency_ms = (time.perf_counter() - start) * 1e3 if start else 0.0
        return row

    async def _bounded(self, call: Any, inputs: dict[str, Any]) -> Any:
        """``await call(inputs)``, ended with ``LMTimeout`` past ``self.deadline``: a reply
        that trickles in byte by byte keeps resetting the client's read timeout."""
        if self.deadline is None:
            return await call(inputs)
        attempt = asyncio.ensure_future(call(inputs))
        try:
            done, _ = await asyncio.wait({attempt}, timeout=self.deadline)
        except BaseException:  # the chunk was cancelled (Ctrl-C, cancel=): stop the call too
            attempt.cancel()
            raise
        if done:
            return attempt.result()
        attempt.cancel()
        await asyncio.wait({attempt})  # let it wind up (its thread, if any, is abandoned)
        raise LMTimeout(
            f"The LM did not finish its reply within {self.deadline:g} s (the call's timeout "
            f"of {self.task.options.timeout:g} s, with a margin); pass a longer timeout=, or "
            "check the LM.", retryable=True)

    def _spent(self, row: _Row, error: BaseException) -> None:
        """Usage of a failed row that still made LM calls (a multi-call module)."""
        p, c, cost = getattr(error, "_dspex_usage", (0, 0, 0.0))
        row.prompt_tokens += p
        row.completion_tokens += c
        row.cost += cost

    def stats(self) -> dict[str, Any]:
        return {"rate_limited": self.rate_limited, "paced": self.paced,
                "retries": self.retries,
                "attempts": self.attempts, "peak_concurrency": self.limiter.peak,
                "final_concurrency": self.limiter.limit, "circuit_open": self.breaker.open,
                "circuit_recoveries": self.breaker.recoveries,
                "circuit_message": self.breaker.message() if self.breaker.open else None,
                "fast_rows": self.fast_rows, "fast_reason": self.fast_reason, "pid": os.getpid()}


def _describe(exc: BaseException) -> str:
    text = redact_text(" ".join(str(exc).split()))   # a provider may echo the API key
    return f"{type(exc).__name__}: {_without_engine_advice(text)[:500]}"


# Advice the LM client (DSPy's lm15 engine) adds to its messages that is untrue here:
# dspex_lab retries retryable errors itself (batch.retry).
_ENGINE_ADVICE = (
    re.compile(r"\s*-?\s*Retry with backoff in your application layer \(lm15 never retries"
               r" for you\)"),
    re.compile(r"\s*\(lm15 never retries[^)]*\)"),
)


def _without_engine_advice(text: str) -> str:
    """``text`` without the LM client's "retry it yourself" advice."""
    for pattern in _ENGINE_ADVICE:
        text = pattern.sub("", text)
    return text


# -- calling one row ------------------------------------------------------------------------------

_ONE_CALL_KINDS = frozenset({"predict", "cot", "chain_of_thought"})


def _call_deadline(task: ChunkTask) -> float | None:
    """A wall-clock bound for one attempt of a row: for programs that make one LM call an
    attempt (Predict, ChainOfThought), the run's ``timeout`` with a margin, so the LM client's
    own timeout speaks first and a reply that trickles in (which keeps resetting the client's
    read timeout) still ends: ``2 * timeout + 10`` seconds. Modules making several calls an
    attempt are bounded by the client's per-call timeout only (see docs/concepts/guarantees)."""
    timeout = task.options.timeout
    if timeout is None or task.program.kind not in _ONE_CALL_KINDS:
        return None
    return timeout * 2 + 10.0  # room for a cold worker's first call (lazy imports)


def _runner(task: ChunkTask, state: _ChunkState) -> Any:
    """``async call(inputs) -> (outputs, prompt_tokens, completion_tokens, cost, hint)``
    (``hint``: the reply's rate-limit headers, when the transport sees them)."""
    from dspex_lab.runtime import build_lm, build_module

    program, opts = task.program, task.options
    module = build_module(program)
    overrides = opts.lm_overrides()
    if opts.temperature is not None:
        overrides["temperature"] = opts.temperature
    lm = _trace.observe(build_lm(task.lm, **overrides))  # the LM run_program uses too
    checked = _output_checker(program)
    threads = _executor(max(task.concurrency, 8))
    custom = getattr(module, "__dspex_arun_row__", None)

    async def via_dspy(inputs: dict[str, Any]) -> tuple[dict[str, Any], int, int, float, Any]:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        fn = functools.partial(_call_dspy, program, inputs, task.lm, opts, overrides)
        out = await loop.run_in_executor(threads, ctx.run, fn)
        return checked(out["outputs"]), out["prompt_tokens"], out["completion_tokens"], \
            out["cost"], None

    if custom is not None:
        async def via_custom(inputs: dict[str, Any]
                             ) -> tuple[dict[str, Any], int, int, float, Any]:
            return (*await _call_custom(custom, inputs, lm, checked, opts), None)
        return via_custom
    if opts.transport != "fast":
        return via_dspy
    from dspex_lab.batch.transport import NotEligible, fast_transport
    from dspex_lab.usage import cost_of

    fast = fast_transport(module, lm, _adapter(opts.effective_adapter()), opts.timeout)
    if opts.settings is not None and opts.settings.values and not isinstance(fast, str):
        fast = ("dspy settings are carried from the kernel ("
                f"{', '.join(k for k, _ in opts.settings.values)})")
    if isinstance(fast, str):
        state.fast_reason = fast
        return via_dspy

    async def via_fast(inputs: dict[str, Any]) -> tuple[dict[str, Any], int, int, float, Any]:
        try:
            pred, p, c, hint = await fast.acall(inputs)
        except NotEligible as exc:
            state.fast_reason = str(exc)
            return await via_dspy(inputs)
        state.fast_rows += 1
        return checked(dict(pred.items())), p, c, cost_of(lm.model, p, c), hint

    return via_fast


def _call_dspy(program: Program, inputs: dict[str, Any], spec: Any, opts: ChunkOptions,
               overrides: dict[str, Any]) -> dict[str, Any]:
    from dspex_lab.runtime import run_program

    lm_overrides = {k: v for k, v in overrides.items() if k != "temperature"}
    return run_program(program, inputs, spec, adapter=opts.adapter,
                       temperature=opts.temperature, lm_overrides=lm_overrides,
                       settings=opts.settings)


async def _call_custom(fn: Any, inputs: dict[str, Any], lm: Any, checked: Any,
                       opts: ChunkOptions) -> tuple[dict[str, Any], int, int, float]:
    import dspy

    from dspex_lab.runtime import make_adapter, outputs_of
    from dspex_lab.usage import usage_totals

    extra: dict[str, Any] = {"lm": lm}
    if opts.adapter is not None:
        extra["adapter"] = make_adapter(opts.adapter)
    with (opts.settings or KernelSettings()).context(**extra), dspy.track_usage() as tracker:
        try:
            out = await fn(inputs, lm)
        except Exception as exc:
            exc._dspex_usage = usage_totals(tracker.get_total_tokens())  # type: ignore[attr-defined]
            raise
    p, c, cost = usage_totals(tracker.get_total_tokens())
    return checked(outputs_of(out)), p, c, cost


def _output_checker(program: Program) -> Any:
    """Coerce the output fields with the signature (as single calls do); extras pass. A
    ``dspy.Signature`` class's outputs are DSPy's own, parsed with the class's types."""
    sig = program.signature
    if sig is None or program.dspy_signature is not None:
        return lambda outputs: outputs

    def check(outputs: dict[str, Any]) -> dict[str, Any]:
        declared = {k: outputs[k] for k in sig.output_names if k in outputs}
        return {**outputs, **sig.validate_outputs(declared)}

    return check


# -- the result table -----------------------------------------------------------------------------

def _to_table(program: Program, rows: list[_Row], stats: dict[str, Any]) -> pa.Table:
    names = list(program.output_names)
    for row in rows:
        for key in row.outputs or ():
            if key not in names:
                names.append(key)
    columns: dict[str, pa.Array] = {}
    for name in names:
        values = [None if r.outputs is None else r.outputs.get(name) for r in rows]
        try:
            columns[name] = to_arrow_values(values)
        except TypeError:  # a value that cannot be pickled: its row fails, the others stay
            columns[name] = to_arrow_values(_unpicklable_fail(rows, name, values))
    columns["error"] = pa.array([r.error for r in rows], pa.string())
    columns["latency_ms"] = pa.array([r.latency_ms for r in rows], pa.float64())
    columns["prompt_tokens"] = pa.array([r.prompt_tokens for r in rows], pa.int64())
    columns["completion_tokens"] = pa.array([r.completion_tokens for r in rows], pa.int64())
    columns["cost"] = pa.array([r.cost for r in rows], pa.float64())
    columns.update(part_columns(len(rows), [r.status for r in rows],
                                [r.error_type for r in rows], [r.attempts for r in rows]))
    table = pa.table(columns)
    metadata = {b"dspex": json.dumps(stats).encode()}
    traces = {i: r.trace for i, r in enumerate(rows) if r.trace is not None}
    if traces:
        metadata[_trace.METADATA_KEY] = _trace.encode(traces)
    return table.replace_schema_metadata(metadata)


def _unpicklable_fail(rows: list[_Row], name: str, values: list[Any]) -> list[Any]:
    """``values`` without those that cannot leave the worker; their rows get the error."""
    from dspex_lab.exchange.objects import dumps

    kept = []
    for row, value in zip(rows, values, strict=True):
        try:
            if value is not None:
                dumps(value)
        except TypeError as exc:
            row.error = (f"TypeError: the output {name!r} cannot leave the worker: {exc} "
                         "Return picklable values (plain data, pydantic models, dataclasses).")
            row.error_type, row.status, value = "TypeError", ERROR, None
        kept.append(value)
    return kept


def chunk_stats(table: pa.Table) -> dict[str, Any]:
    """The stats ``run_chunk`` put in the table's schema metadata."""
    raw = (table.schema.metadata or {}).get(b"dspex")
    return json.loads(raw) if raw else {}


# -- per-process machinery -------------------------------------------------------------------------

_STATE: dict[str, Any] = {"pid": None, "loop": None, "pool": None, "adapters": {},
                          "pacers": {}, "breakers": {}}
_STATE_LOCK = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    """This process's batch event loop, running in a daemon thread (made after a fork too)."""
    with _STATE_LOCK:
        if _STATE["pid"] != os.getpid() or _STATE["loop"] is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="dspex-batch-loop",
                             daemon=True).start()
            if _STATE["pid"] is None:
                atexit.register(_close_loop)
            _STATE.update(pid=os.getpid(), loop=loop, pool=None, adapters={}, pacers={},
                          breakers={})
        return _STATE["loop"]


def _close_loop() -> None:
    """At exit: close the fast transport's HTTP sessions, then stop the loop."""
    loop = _STATE["loop"]
    if loop is None or _STATE["pid"] != os.getpid() or loop.is_closed():
        return
    from dspex_lab.batch.transport import close_sessions

    with contextlib.suppress(Exception):  # exiting anyway
        asyncio.run_coroutine_threadsafe(close_sessions(), loop).result(timeout=2)
    loop.call_soon_threadsafe(loop.stop)


def _executor(threads: int) -> cf.ThreadPoolExecutor:
    """The thread pool DSPy calls run in (grown when a run asks for more concurrency)."""
    with _STATE_LOCK:
        pool = _STATE["pool"]
        if pool is None or pool._max_workers < threads:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = _STATE["pool"] = cf.ThreadPoolExecutor(threads,
                                                          thread_name_prefix="dspex-batch")
        return pool


def _pacer(task: ChunkTask) -> Pacer:
    """This process's pacer for the task's LM: what one chunk learns from the provider's
    headers, the next chunk knows from its first call."""
    return _shared("pacers", (_lm_key(task.lm), task.parallel), lambda: Pacer(task.parallel))


def _breaker(task: ChunkTask) -> CircuitBreaker:
    """The circuit breaker of this run's chunks in this process (per LM): a paused LM pauses
    every chunk, and a new run starts with a closed circuit."""
    return _shared("breakers", (task.execution, _lm_key(task.lm)),
                   lambda: CircuitBreaker(task.options.breaker))


def _lm_key(lm: Any) -> Any:
    try:
        hash(lm)
    except TypeError:
        return id(lm)
    return lm


def _shared(kind: str, key: Any, make: Any) -> Any:
    with _STATE_LOCK:
        items = _STATE[kind]
        if key not in items:
            if len(items) > 64:
                items.clear()
            items[key] = make()
        return items[key]


def _adapter(name: Any) -> Any:
    """The adapter for a short name (one per process), or the instance as it is."""
    from dspex_lab.runtime import make_adapter

    if name is not None and not isinstance(name, str):
        return name
    with _STATE_LOCK:
        adapters = _STATE["adapters"]
        if name not in adapters:
            adapters[name] = make_adapter(name)
        return adapters[name]


def _speed_up_dspy() -> None:
    """Memoize DSPy's pricing-metadata lookup (per process; it is a pure function of static
    data). For a model the table does not list -- such as the embedded one -- DSPy scans the
    whole table twice per call, about 3 ms of CPU, which caps a process near 200 calls/s."""
    try:
        from dspy.clients import costs
    except ImportError:  # pragma: no cover
        return
    original = costs.model_info
    if getattr(original, "_dspex_memo", False):
        return

    @functools.lru_cache(maxsize=1024)
    def cached(provider: Any, model: Any, namespaces: Any) -> Any:
        return original(provider, model, namespaces=namespaces)

    def model_info(provider: Any, model: Any, *, namespaces: Any = None) -> Any:
        try:
            key = tuple(namespaces) if namespaces is not None else None
            return copy.deepcopy(cached(provider, model, key))
        except TypeError:  # unhashable arguments: no memo
            return original(provider, model, namespaces=namespaces)

    model_info._dspex_memo = True  # type: ignore[attr-defined]
    costs.model_info = model_info
