"""Running a checked pipeline: state in, state out, one ``StepResult`` per step.

Native steps run in the calling thread (no IPC). DSPy steps run through a ``dspy_call``
strategy: in the kernel that is ``KernelDSPy`` (``kernel.py``: the router, so a worker of the
pool or a cached answer; ``batch.run`` for a ``map`` over many items); inside ``to_dspy()`` it
calls the module's own DSPy submodules. Parallel branches and the items of a ``map`` over DSPy
steps run in threads (each thread mostly waits on a worker). Every finished step is recorded in
the trace, sent to ``on_step`` and emitted as a ``pipeline.step`` telemetry event; the run ends
with a ``pipeline.run`` event. Streaming lives in ``stream.py``.

``timeout`` bounds the whole run (a batch row): DSPy steps get the time left; native steps,
``when`` conditions and inline DSPy calls then run in a daemon thread that is abandoned when
the time is up (Python cannot kill a thread), and the step fails with ``StepTimeout``.

    >>> runner = Runner(plan, name="qa", dspy_call=KernelDSPy())
    >>> result = runner.run({"question": "What is 2 + 3?"})
    >>> result["answer"], [r.name for r in result.trace]
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import PipelineError, StepTimeout
from dspex_lab.pipeline.build import Plan
from dspex_lab.pipeline.result import PipelineResult, StepResult
from dspex_lab.pipeline.steps import (
    DSPyStep,
    Map,
    NativeStep,
    Parallel,
    Sequence,
    Step,
    When,
    walk,
    written,
)

__all__ = ["BATCH_MAP_MIN", "DSPyCall", "Leaf", "Runner", "StepFailed"]

log = logging.getLogger("dspex_lab.pipeline")
_perf = time.perf_counter
DEFAULT_MAP_CONCURRENCY = 8


class StepFailed(PipelineError):
    """A step failed and the run stops (``continue_on_error=False``)."""

    def __reduce__(self) -> tuple:  # crosses process boundaries without the partial result
        return (StepFailed, (str(self), self.step))


@dataclass(slots=True)
class Leaf:
    """What a DSPy step call returned: every prediction field plus how the call went."""

    outputs: dict[str, Any]
    route: str = "pool"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False


DSPyCall = Callable[[DSPyStep, dict[str, Any], float | None], Leaf]
"""How a runner calls one DSPy step. It may also have ``batch(step, rows)`` returning one
``Leaf`` or exception per row, which a ``map`` over a DSPy step uses for many items."""
BATCH_MAP_MIN = 16
"""A ``map`` over a DSPy step with at least this many items goes through the batch path."""


@dataclass(eq=False)
class _Ctx:
    """Where a step runs: its parents' results, a deadline, and whether it was abandoned."""

    parents: tuple[StepResult, ...] = ()
    path: str = ""
    deadline: float | None = None
    abandoned: tuple[threading.Event, ...] = ()
    collect: list[StepResult] | None = None

    def child(self, result: StepResult, **changes: Any) -> _Ctx:
        path = f"{self.path}/{result.name}" if self.path else result.name
        ctx = _Ctx((*self.parents, result), path, self.deadline, self.abandoned, self.collect)
        for k, v in changes.items():
            setattr(ctx, k, v)
        return ctx

    @property
    def gone(self) -> bool:
        return any(e.is_set() for e in self.abandoned)


@dataclass(eq=False)
class Runner:
    """Runs one ``Plan``. ``concurrent=False`` runs branches and items one after the other."""

    plan: Plan
    name: str = "pipeline"
    dspy_call: DSPyCall | None = None
    continue_on_error: bool = False
    on_step: Callable[[StepResult], Any] | None = None
    concurrent: bool = True
    emit: bool = True
    cancel: threading.Event | None = None
    map_concurrency: int | None = None
    timeout: float | None = None
    _trace: list[StepResult] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: Any = field(default_factory=lambda: itertools.count())
    _start: float = 0.0
    _failed: dict[str, str] = field(default_factory=dict)

    def run(self, inputs: Mapping[str, Any]) -> PipelineResult:
        """Run on ``inputs``; returns the result, or raises ``PipelineError`` (with ``.result``)."""
        missing = [n for n in self.plan.inputs if n not in inputs]
        if missing:
            raise PipelineError(
                f"Pipeline {self.name!r} needs the input{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}; got: {', '.join(map(repr, inputs)) or 'none'}."
                f" Call it with all of: {', '.join(self.plan.inputs)}.")
        self._trace, self._failed = [], {}
        self._start = _perf()
        state = dict(inputs)
        error: PipelineError | None = None
        try:
            deadline = None if self.timeout is None else self._start + self.timeout
            self._sequence(self.plan.steps, state, _Ctx(deadline=deadline), in_place=True)
        except StepFailed as exc:
            error = exc
        result = PipelineResult(state, sorted(self._trace, key=lambda r: r.index),
                                self.plan.inputs, self.plan.outputs, self.name,
                                (_perf() - self._start) * 1e3)
        if self.emit:
            telemetry.emit("pipeline.run", pipeline=self.name, steps=len(result.trace),
                           status="error" if error else ("partial" if result.errors else "ok"),
                           latency_ms=result.latency_ms, prompt_tokens=result.prompt_tokens,
                           completion_tokens=result.completion_tokens, cost=result.cost,
                           errors=len(result.errors))
        if error is not None:
            error.result = result  # type: ignore[attr-defined]
            raise error
        return result

    # -- one step --------------------------------------------------------------------------------
    def _exec(self, step: Step, state: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        if self.cancel is not None and self.cancel.is_set():
            raise StepFailed(f"Pipeline {self.name!r} was cancelled before step {step.name!r}.",
                             step=step.name)
        t0 = _perf()
        res = StepResult(step.name, step.kind, index=next(self._counter),
                         started_ms=(t0 - self._start) * 1e3, depth=len(ctx.parents),
                         path=f"{ctx.path}/{step.name}" if ctx.path else step.name)
        writes: dict[str, Any] = {}
        try:
            missing = self._missing(step, state)
            if missing:
                res.status, res.error = "skipped", missing
                if not self.continue_on_error:
                    raise StepFailed(f"Step {step.name!r} cannot run: {missing}", step=step.name)
            elif isinstance(step, NativeStep):  # the hot path: no context, no dispatch
                res.route = "native"
                writes = res.outputs = (step.call(state) if ctx.deadline is None or
                                        self.timeout is None else
                                        self._bounded(step, ctx.deadline, step.call, state))
            else:
                writes = self._dispatch(step, state, ctx.child(res), res)
        except StepFailed as exc:
            res.status = "error" if res.status == "ok" else res.status
            res.error = res.error or str(exc)
            raise
        except Exception as exc:
            res.status, res.exception = "error", exc
            res.error = f"{type(exc).__name__}: {exc}"
            for name in written(step):
                self._failed.setdefault(name, step.name)
            if not self.continue_on_error:
                raise StepFailed(f"Step {step.name!r} ({step.kind}) failed: {res.error}",
                                 step=step.name, errors=[exc]) from exc
        finally:
            res.latency_ms = (_perf() - t0) * 1e3
            self._finish(res, ctx)
        return writes

    def _missing(self, step: Step, state: Mapping[str, Any]) -> str | None:
        for n in step.reads:
            if n not in state:
                break
        else:
            return None
        optional = step.optional if isinstance(step, NativeStep) else ()
        gone = [n for n in step.reads if n not in state and n not in optional]
        if not gone:
            return None
        why = [f"{n!r} (step {self._failed[n]!r} failed)" if n in self._failed else repr(n)
               for n in gone]
        return f"missing field{'s' if len(gone) > 1 else ''} {', '.join(why)}"

    def _dispatch(self, step: Step, state: dict[str, Any], ctx: _Ctx, res: StepResult
                  ) -> dict[str, Any]:
        if isinstance(step, DSPyStep):
            return self._dspy(step, state, ctx, res)
        if isinstance(step, Sequence):
            return self._sequence(step.steps, state, ctx)
        if isinstance(step, Parallel):
            return self._parallel(step, state, ctx, res)
        if isinstance(step, When):
            return self._when(step, state, ctx, res)
        if isinstance(step, Map):
            return self._map(step, state, ctx, res)
        raise PipelineError(f"Unknown step type {type(step).__name__}.", step=step.name)

    def _finish(self, res: StepResult, ctx: _Ctx) -> None:
        if ctx.abandoned and ctx.gone:
            return
        if ctx.parents and res.kind in ("native", "dspy"):
            with self._lock:
                for parent in ctx.parents:  # roll tokens, cost and routes up
                    parent.add_usage(res)
        if ctx.collect is not None:
            ctx.collect.append(res)  # list.append is atomic
            return
        self._trace.append(res)
        if self.emit:
            telemetry.emit("pipeline.step", **_event_fields(self.name, res))
        if self.on_step is not None:
            try:
                self.on_step(res)
            except Exception:  # a callback must never break the run
                log.exception("pipeline on_step callback %r failed", self.on_step)

    # -- step kinds ------------------------------------------------------------------------------
    def _dspy(self, step: DSPyStep, state: dict[str, Any], ctx: _Ctx, res: StepResult
              ) -> dict[str, Any]:
        if self.dspy_call is None:
            raise PipelineError("This runner has no way to run DSPy steps.", step=step.name)
        values = {k: state[k] for k in step.reads}
        timeout = step.timeout
        if ctx.deadline is not None:
            left = max(ctx.deadline - _perf(), 0.001)
            timeout = left if timeout is None else min(timeout, left)
        if (ctx.deadline is None or self.timeout is None
                or getattr(self.dspy_call, "bounds_timeout", False)):
            leaf = self.dspy_call(step, values, timeout)
        else:  # an inline call (to_dspy) may ignore ``timeout``: bound it here
            leaf = self._bounded(step, ctx.deadline, self.dspy_call, step, values, timeout)
        res.route, res.cached = leaf.route, leaf.cached
        res.prompt_tokens, res.completion_tokens, res.cost = (
            leaf.prompt_tokens, leaf.completion_tokens, leaf.cost)
        res.outputs = leaf.outputs
        missing = [n for n in step.writes if n not in leaf.outputs]
        if missing:
            raise PipelineError(f"DSPy step {step.name!r} returned no {missing} (it returned: "
                                f"{', '.join(leaf.outputs)}).", step=step.name)
        return {n: leaf.outputs[n] for n in step.writes}

    def _sequence(self, steps: tuple[Step, ...], state: dict[str, Any], ctx: _Ctx, *,
                  in_place: bool = False) -> dict[str, Any]:
        local = state if in_place else dict(state)
        wrote: dict[str, Any] = {}
        for s in steps:
            w = self._exec(s, local, ctx)
            local.update(w)
            wrote.update(w)
        return wrote

    def _parallel(self, step: Parallel, state: dict[str, Any], ctx: _Ctx, res: StepResult
                  ) -> dict[str, Any]:
        branches = step.branches
        if not self.concurrent or len(branches) == 1:
            outs = [self._exec(b, dict(state), ctx) for b in branches]
        else:
            outs = self._threads(step, state, ctx)
        merged: dict[str, Any] = {}
        for w in outs:
            merged.update(w)
        res.outputs = merged
        return merged

    def _threads(self, step: Parallel, state: dict[str, Any], ctx: _Ctx) -> list[dict]:
        n = len(step.branches)
        flags = [threading.Event() for _ in range(n)]
        deadline = None if step.timeout is None else _perf() + step.timeout
        if ctx.deadline is not None:
            deadline = ctx.deadline if deadline is None else min(deadline, ctx.deadline)
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"dspex-{step.name}")
        try:
            futures = []
            for b, flag in zip(step.branches, flags, strict=True):
                bctx = _Ctx(ctx.parents, ctx.path, deadline, (*ctx.abandoned, flag), ctx.collect)
                run = contextvars.copy_context().run
                futures.append(pool.submit(run, self._exec, b, dict(state), bctx))
            outs: list[dict] = []
            for b, fut, flag in zip(step.branches, futures, flags, strict=True):
                left = None if deadline is None else max(deadline - _perf(), 0)
                try:
                    outs.append(fut.result(timeout=left))
                except FutureTimeout:
                    flag.set()
                    outs.append(self._timed_out(b, step, ctx))
                except StepFailed:
                    for f in flags:
                        f.set()
                    raise
            return outs
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _timed_out(self, branch: Step, step: Parallel, ctx: _Ctx) -> dict[str, Any]:
        res = StepResult(branch.name, branch.kind, status="error", index=next(self._counter),
                         started_ms=(_perf() - self._start) * 1e3, depth=len(ctx.parents),
                         path=f"{ctx.path}/{branch.name}" if ctx.path else branch.name,
                         latency_ms=(step.timeout or self.timeout or 0) * 1e3)
        if step.timeout is not None and (self.timeout is None or step.timeout <= self.timeout):
            res.error = (f"StepTimeout: step {branch.name!r} took longer than {step.timeout} s "
                         f"(the timeout of parallel step {step.name!r})")
        else:
            res.error = (f"StepTimeout: step {branch.name!r} (branch of {step.name!r}) of "
                         f"pipeline {self.name!r} did not finish within the timeout of "
                         f"{self.timeout:g} s; it was abandoned.")
        for name in written(branch):
            self._failed.setdefault(name, branch.name)
        self._finish(res, ctx)
        if not self.continue_on_error:
            raise StepFailed(res.error or "", step=branch.name,
                             errors=[StepTimeout(res.error or "", step=branch.name)])
        return {}

    def _bounded(self, step: Step, deadline: float, fn: Callable[..., Any], *args: Any
                 ) -> Any:
        """``fn(*args)`` in a daemon thread, abandoned (``StepTimeout``) at ``deadline``. Only
        with a run ``timeout``: a parallel step's own timeout abandons its branches itself."""
        left = deadline - _perf()
        box: dict[str, Any] = {}
        done = threading.Event()
        context = contextvars.copy_context()  # dspy.context() settings go along

        def target() -> None:
            try:
                box["value"] = context.run(fn, *args)
            except BaseException as exc:  # re-raised in the caller
                box["error"] = exc
            finally:
                done.set()

        if left > 0:
            threading.Thread(target=target, name=f"dspex-step-{step.name}", daemon=True).start()
        if left <= 0 or not done.wait(left):
            raise StepTimeout(
                f"Step {step.name!r} ({step.kind}) of pipeline {self.name!r} did not finish "
                f"within the timeout of {self.timeout:g} s; it was abandoned (its thread may "
                "still be running). Make the step return sooner or raise the timeout.",
                step=step.name)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _when(self, step: When, state: dict[str, Any], ctx: _Ctx, res: StepResult
              ) -> dict[str, Any]:
        taken = (step.test(state) if ctx.deadline is None or self.timeout is None else
                 self._bounded(step, ctx.deadline, step.test, state))
        branch = step.then if taken else step.otherwise
        res.detail = "then" if taken else ("otherwise" if branch is not None else "no branch")
        writes = {} if branch is None else self._exec(branch, state, ctx)
        for name in written(step):
            if name not in writes and name not in state:
                writes[name] = None
        res.outputs = writes
        return writes

    def _map(self, step: Map, state: dict[str, Any], ctx: _Ctx, res: StepResult
             ) -> dict[str, Any]:
        items = state[step.field]
        if isinstance(items, str | bytes | Mapping) or not hasattr(items, "__iter__"):
            raise PipelineError(f"Map step {step.name!r} needs a list in {step.field!r}, got "
                                f"{type(items).__name__}: {items!r:.80}.", step=step.name)
        items = list(items)
        res.detail = f"{len(items)} item{'s' if len(items) != 1 else ''}"
        collected: list[StepResult] = []
        item_ctx = _Ctx(ctx.parents, ctx.path, ctx.deadline, ctx.abandoned, collected)
        batch = getattr(self.dspy_call, "batch", None)
        if (batch is not None and self.concurrent and isinstance(step.step, DSPyStep)
                and len(items) >= BATCH_MAP_MIN and ctx.deadline is None):
            leaves = batch(step.step, [{**state, step.as_: it} for it in items])
            if leaves is not None:
                return self._map_batched(step, leaves, item_ctx, res)

        def one(item: Any) -> dict[str, Any]:
            return self._exec(step.step, {**state, step.as_: item}, item_ctx)

        workers = step.max_concurrency or self.map_concurrency or DEFAULT_MAP_CONCURRENCY
        if self.concurrent and len(items) > 1 and workers > 1 and _has_dspy(step.step):
            with ThreadPoolExecutor(max_workers=min(workers, len(items)),
                                    thread_name_prefix=f"dspex-{step.name}") as pool:
                parent = contextvars.copy_context()
                per_item = list(pool.map(lambda it: parent.copy().run(one, it), items))
        else:
            per_item = [one(it) for it in items]
        res.children = sorted(collected, key=lambda r: r.index)
        failed = sum(1 for r in collected if r.status != "ok" and r.depth == res.depth + 1)
        if failed:
            res.detail += f", {failed} failed"
        writes = {name: [w.get(name) for w in per_item] for name in written(step.step)}
        res.outputs = writes
        return writes


    def _map_batched(self, step: Map, leaves: list[Leaf | BaseException], ctx: _Ctx,
                     res: StepResult) -> dict[str, Any]:
        """Record one child result per item of a batched map and collect the outputs."""
        inner, first_error = step.step, None
        for leaf in leaves:
            child = StepResult(inner.name, inner.kind, index=next(self._counter),
                               depth=res.depth + 1, path=f"{res.path}/{inner.name}")
            if isinstance(leaf, BaseException):
                child.status, child.error, child.exception = "error", str(leaf), leaf
                first_error = first_error or child
            else:
                child.route, child.cached, child.outputs = leaf.route, leaf.cached, leaf.outputs
                child.prompt_tokens, child.completion_tokens, child.cost = (
                    leaf.prompt_tokens, leaf.completion_tokens, leaf.cost)
            self._finish(child, ctx)
        res.children = list(ctx.collect or ())
        failed = sum(1 for c in res.children if c.status != "ok")
        res.detail += ", batched" + (f", {failed} failed" if failed else "")
        if first_error is not None and not self.continue_on_error:
            raise StepFailed(f"Step {inner.name!r} failed for {failed} of {len(leaves)} items "
                             f"of map {step.name!r}; first: {first_error.error}",
                             step=inner.name, errors=[first_error.exception])
        writes = {name: [None if isinstance(leaf, BaseException) else leaf.outputs.get(name)
                         for leaf in leaves] for name in inner.writes}
        res.outputs = writes
        return writes


def _event_fields(pipeline: str, res: StepResult) -> dict[str, Any]:
    """The fields of a ``pipeline.step`` event: few keys for native steps (they are cheap and
    frequent), usage for the others, ``path``/``error`` only when they say something."""
    fields: dict[str, Any] = {"pipeline": pipeline, "step": res.name, "step_kind": res.kind,
                              "route": res.route, "status": res.status,
                              "latency_ms": res.latency_ms}
    if res.kind != "native":
        fields.update(prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                      cost=res.cost, cached=res.cached)
    if res.depth:
        fields["path"] = res.path
    if res.error is not None:
        fields["error"] = res.error
    return fields


def _has_dspy(step: Step) -> bool:
    return any(isinstance(s, DSPyStep) for s in walk((step,)))
