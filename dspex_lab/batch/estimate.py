"""``estimate``: what a run would cost, how long it would take and where it would run.

A dry run: the inputs are checked exactly as ``run`` checks them, cached rows are counted
(they cost nothing), and a small sample of the remaining rows is really run (its answers go
to the cache, so the full run reuses them). Tokens, cost and time scale from the sample.

    >>> est = dspex_lab.estimate("question -> answer", df, sample=5)
    >>> est.cost_usd, est.seconds, est.plan
    >>> est                      # a small table in Jupyter
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dspex_lab.batch.inputs import prepare_inputs, row_keys
from dspex_lab.batch.options import pool_slots, resolve_pool
from dspex_lab.batch.run import run
from dspex_lab.programs import as_program

__all__ = ["Estimate", "estimate"]


@dataclass
class Estimate:
    """The forecast of a run. Per-row figures come from ``sample_rows`` real calls."""

    rows: int
    cached_rows: int
    invalid_rows: int
    sample_rows: int
    sample_errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    seconds: float
    model: str
    concurrency: int
    per_row: dict[str, float] = field(default_factory=dict)
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def to_compute(self) -> int:
        """Rows that would call the LM."""
        return self.rows - self.cached_rows - self.invalid_rows

    def _lines(self) -> list[tuple[str, str]]:
        return [
            ("rows", f"{self.rows:,} ({self.cached_rows:,} cached, {self.invalid_rows:,} "
                     f"invalid, {self.to_compute:,} to compute)"),
            ("model", self.model),
            ("tokens", f"~{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion"),
            ("cost", f"~${self.cost_usd:,.4f}"),
            ("time", f"~{self.seconds:,.1f} s at concurrency {self.concurrency}"),
            ("sample", f"{self.sample_rows} rows ({self.sample_errors} errors); per row "
                       f"{self.per_row.get('prompt_tokens', 0):.0f}+"
                       f"{self.per_row.get('completion_tokens', 0):.0f} tokens, "
                       f"{self.per_row.get('latency_ms', 0):.0f} ms"),
            ("plan", "; ".join(f"{p['rows']:,} rows -> {p['route']} ({p['reason']})"
                               for p in self.plan)),
        ]

    def __repr__(self) -> str:
        body = "\n".join(f"  {k:<7} {v}" for k, v in self._lines())
        return f"Estimate(\n{body}\n)"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in self._lines())
        return f"<table><caption>dspex_lab run estimate</caption>{rows}</table>"


def estimate(program: Any, data: Any, *, sample: int = 5, columns: Mapping[str, str] | None = None,
             lm: Any = None, pool: Any = "general", concurrency: int | None = None,
             module: str = "predict", adapter: str | None = None,
             temperature: float | None = None, cache: bool = True, **run_options: Any
             ) -> Estimate:
    """Forecast ``run(program, data, ...)``: tokens, cost, time and the router's plan, from
    ``sample`` real calls (0: no calls, only the plan and the cached rows).

    >>> dspex_lab.estimate("question -> answer", df, sample=3).cost_usd
    """
    from dspex_lab.cache import get_cache
    from dspex_lab.calls import lm_identity, resolve_lm

    prog = as_program(program, module=module)
    spec = resolve_lm(lm)
    batch = prepare_inputs(prog, data, columns)
    keys, invalid = row_keys(prog, batch.table, lm_identity(spec), adapter=adapter,
                             temperature=temperature)
    valid = [i for i, k in enumerate(keys) if k is not None]
    hits = get_cache().get_many([keys[i] for i in valid]) if cache else {}
    todo = np.array([i for i in valid if keys[i] not in hits], dtype=np.int64)
    picked = todo[np.linspace(0, len(todo) - 1, min(sample, len(todo))).astype(np.int64)] \
        if len(todo) and sample > 0 else todo[:0]
    per_row, errors = _sample(prog, batch.table.take(picked), spec, pool, concurrency,
                              adapter, temperature, run_options) if len(picked) else ({}, 0)
    pool_obj, pool_name = resolve_pool(pool) if len(todo) else (None, str(pool))
    total = concurrency or min(64, 16 * (pool_slots(pool_obj) if pool_obj else 1))
    n = len(todo)
    latency = per_row.get("latency_ms", 0.0) / 1e3
    return Estimate(
        rows=batch.num_rows, cached_rows=len(hits), invalid_rows=len(invalid),
        sample_rows=len(picked), sample_errors=errors,
        prompt_tokens=round(per_row.get("prompt_tokens", 0.0) * n),
        completion_tokens=round(per_row.get("completion_tokens", 0.0) * n),
        cost_usd=per_row.get("cost", 0.0) * n,
        seconds=math.ceil(n / total) * latency if n else 0.0,
        model=str(getattr(spec, "model", spec)), concurrency=total, per_row=per_row,
        plan=_plan(len(hits), len(invalid), n, pool_obj, pool_name))


def _sample(prog: Any, table: Any, spec: Any, pool: Any, concurrency: int | None,
            adapter: str | None, temperature: float | None, options: dict[str, Any]
            ) -> tuple[dict[str, float], int]:
    frame = run(prog, table, lm=spec, pool=pool, concurrency=concurrency, adapter=adapter,
                temperature=temperature, progress=False, on_error="record", **options)
    ok = frame[frame["error"].isna()]
    errors = len(frame) - len(ok)
    if not len(ok):
        return {}, errors
    return {name: float(ok[name].astype("float64").mean())
            for name in ("prompt_tokens", "completion_tokens", "cost", "latency_ms")}, errors


def _plan(cached: int, invalid: int, todo: int, pool: Any, pool_name: str
          ) -> list[dict[str, Any]]:
    plan = []
    if cached:
        plan.append({"route": "native", "rows": cached, "reason": "cached answers",
                     "pool": None})
    if invalid:
        plan.append({"route": "native", "rows": invalid,
                     "reason": "inputs that do not fit the signature (no call)", "pool": None})
    if todo:
        route, reason = getattr(pool, "kind", "pool"), "runs DSPy in a worker"
        if isinstance(pool_name, str) and pool is not None and not hasattr(pool, "_max_workers"):
            from dspex_lab.router import get_router

            decided = get_router().plan("run", pool=pool_name)
            route, reason = decided.implementation, decided.reason
        plan.append({"route": route, "rows": todo, "reason": reason, "pool": pool_name})
    return plan
