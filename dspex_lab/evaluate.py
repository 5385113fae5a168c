"""``evaluate``: run a program over labelled rows and score every prediction.

Predictions come from ``dspex_lab.batch.run`` (pools, cache, retries, progress); the metric
runs in the kernel afterwards: a native metric (``exact_match``, ``f1``, ``accuracy``, or its
name) vectorised over the columns, any callable ``metric(gold_row, pred_row)``, or a DSPy metric
``metric(example, pred, trace=None)`` (rows wrapped as ``dspy.Example``/``dspy.Prediction``).
Rows that errored score 0 and are listed by ``result.failures()``.

    >>> res = dspex_lab.evaluate("question -> answer", df, metric="exact_match")
    >>> res.score, res.table.columns[:4].tolist()
    (1.0, ['question', 'answer', 'gold_answer', 'score'])
    >>> dspex_lab.evaluate(prog, df, metric=lambda gold, pred: gold.answer in pred.answer)
"""

from __future__ import annotations

import html
import inspect
import math
import sys
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError
from dspex_lab.native.metrics import Metric, accuracy, exact_match, f1
from dspex_lab.programs import Program, as_program

__all__ = ["BATCH_COLUMNS", "EvaluationResult", "Row", "evaluate", "resolve_metric",
           "score_predictions"]

BATCH_COLUMNS = ("error", "latency_ms", "prompt_tokens", "completion_tokens", "cost", "cached")
"""The bookkeeping columns ``batch.run`` adds next to the output fields."""

NATIVE_METRICS: dict[str, Metric] = {m.name: m for m in (exact_match, f1, accuracy)}


class Row(dict):
    """A row given to a metric: a dict that also reads as attributes (``row.answer``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"This row has no field {name!r}; it has: {', '.join(self)}."
            ) from None


@dataclass
class EvaluationResult:
    """The outcome of ``evaluate``: ``score`` (mean of the per-row scores; errors count 0) and
    ``table`` (one row per input: inputs, predictions, ``gold_<field>``, ``score``, ``error``,
    latency, tokens, cost).

    >>> res.score, len(res.failures())
    (0.75, 2)
    """

    score: float
    table: Any
    metric: str
    program: str = ""
    gold: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def n_errors(self) -> int:
        return int(self.table["error"].notna().sum())

    def failures(self, threshold: float = 1.0) -> Any:
        """The rows that errored or scored below ``threshold``."""
        table = self.table
        return table[table["error"].notna() | (table["score"] < threshold)]

    def errors(self) -> Any:
        """The rows whose call (or metric) raised; their ``error`` column says why."""
        return self.table[self.table["error"].notna()]

    @property
    def usage(self) -> dict[str, float]:
        """Token and cost totals over the rows."""
        return {col: float(self.table[col].fillna(0).sum())
                for col in ("prompt_tokens", "completion_tokens", "cost") if col in self.table}

    def __float__(self) -> float:
        return float(self.score)

    def _summary(self) -> list[tuple[str, str]]:
        items = [("metric", self.metric), ("score", f"{self.score:.4g}"), ("rows", str(self.n)),
                 ("errors", str(self.n_errors)), ("failures", str(len(self.failures()))),
                 ("time", f"{self.elapsed_s:.2f} s")]
        usage = self.usage
        if usage.get("prompt_tokens") or usage.get("completion_tokens"):
            tokens = int(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
            items.append(("tokens", f"{tokens:,}"))
        if usage.get("cost"):
            items.append(("cost", f"${usage['cost']:.4f}"))
        return items

    def __repr__(self) -> str:
        return "EvaluationResult(" + ", ".join(f"{k}={v}" for k, v in self._summary()) + ")"

    def _repr_html_(self) -> str:
        from dspex_lab.display._html import table

        out = [f"<div class='dspex-evaluation'><b>Evaluation</b> of "
               f"<code>{html.escape(self.program)}</code>{table(self._summary())}"]
        failures = self.failures()
        if len(failures):
            out.append(f"<details><summary>First failures ({len(failures)} in all; "
                       "<code>.failures()</code> lists them)</summary>")
            out.append(failures.head(5).to_html(max_cols=12, escape=True))
            out.append("</details>")
        out.append("</div>")
        return "".join(out)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}


def resolve_metric(metric: Any) -> tuple[str, Any]:
    """``(kind, metric)``: kind is ``native``, ``row`` (``fn(gold, pred)``) or ``dspy``
    (``fn(example, pred, trace=None)``). Strings name native metrics."""
    if isinstance(metric, str):
        try:
            return "native", NATIVE_METRICS[metric]
        except KeyError:
            raise ConfigurationError(
                f"Unknown metric {metric!r}; use one of {', '.join(NATIVE_METRICS)} or pass a "
                "callable metric(gold, pred)."
            ) from None
    if isinstance(metric, Metric):
        return "native", metric
    if not callable(metric):
        raise ConfigurationError(
            f"metric must be a callable or a native metric name, not {type(metric).__name__}."
        )
    return ("dspy" if takes_trace(metric) else "row"), metric


def takes_trace(fn: Callable[..., Any]) -> bool:
    """True for DSPy-style metrics: a ``trace`` parameter, or three or more positional ones."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if "trace" in params:
        return True
    positional = [p for p in params.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3


def evaluate(program: Any, data: Any, metric: Any = exact_match, *,
             columns: Mapping[str, str] | None = None, gold: str | Mapping[str, str] | None = None,
             lm: Any = None, **run_kwargs: Any) -> Any:
    """Run ``program`` on ``data`` and score each row with ``metric``; an ``EvaluationResult``.

    ``gold`` maps output fields to the columns holding their expected values (default: the
    columns named like the outputs; a string when the program has one output). ``columns``
    maps input fields to columns, as in ``run``. Other keyword arguments go to
    ``dspex_lab.batch.run`` (``pool``, ``cache``, ``progress``, ``concurrency``, ...).

    >>> evaluate("question -> answer", df, metric="f1", gold={"answer": "expected"}).score
    """
    from dspex_lab import batch

    prog = as_program(program)
    kind, fn = resolve_metric(metric)
    frame = as_frame(data)
    if len(frame) == 0:
        raise ConfigurationError("evaluate() got no rows; pass a DataFrame or list of dicts "
                                 "with at least one labelled row.")
    gold_cols = gold_columns(prog, frame, gold, needed=kind == "native")
    start = time.perf_counter()
    predictions = batch.run(prog, _input_frame(prog, frame, columns, gold_cols),
                            columns=columns, lm=lm, **run_kwargs)
    table = score_predictions(prog, frame, predictions, fn, gold_cols, kind=kind)
    score = float(table["score"].mean())
    result = EvaluationResult(score=score, table=table, metric=_metric_name(fn),
                              program=repr(prog), gold=gold_cols,
                              elapsed_s=time.perf_counter() - start)
    telemetry.emit("evaluate", metric=result.metric, score=score, rows=len(table),
                   errors=result.n_errors, duration_ms=result.elapsed_s * 1e3)
    return result


def as_frame(data: Any) -> Any:
    """A pandas DataFrame from a DataFrame, an Arrow table/stream, a list of dicts or Examples."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    if hasattr(data, "__arrow_c_stream__"):
        import pyarrow as pa

        return pa.table(data).to_pandas()
    if isinstance(data, (list, tuple)):
        return pd.DataFrame([r.toDict() if hasattr(r, "toDict") else dict(r) for r in data])
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    raise ConfigurationError(
        f"Cannot evaluate on a {type(data).__name__}; pass a pandas DataFrame, a pyarrow Table "
        "or a list of dicts."
    )


def gold_columns(prog: Program, frame: Any, gold: str | Mapping[str, str] | None, *,
                 needed: bool) -> dict[str, str]:
    """Output field -> gold column, checked against the data before any LM call."""
    outputs = list(prog.output_names)
    if isinstance(gold, str):
        if len(outputs) > 1:
            raise ConfigurationError(
                f"The program has several outputs ({', '.join(outputs)}); say which one "
                f"{gold!r} labels, e.g. gold={{{outputs[0]!r}: {gold!r}}}."
            )
        gold = {outputs[0] if outputs else "answer": gold}
    if gold is None:
        mapping = {name: name for name in outputs if name in frame.columns}
    else:
        mapping = dict(gold)
        missing = [col for col in mapping.values() if col not in frame.columns]
        if missing:
            raise ConfigurationError(
                f"The data has no gold column {', '.join(map(repr, missing))}; its columns: "
                f"{', '.join(map(str, frame.columns))}."
            )
        unknown = [f for f in mapping if outputs and f not in outputs]
        if unknown:
            raise ConfigurationError(
                f"gold names {', '.join(map(repr, unknown))}, which the program does not output; "
                f"its outputs: {', '.join(outputs)}."
            )
    if needed and not mapping:
        want = ", ".join(map(repr, outputs)) or "the output fields"
        raise ConfigurationError(
            f"The metric compares outputs with gold answers, but the data has no column named "
            f"{want}. Add one, or map it: gold={{'answer': 'expected_answer'}}."
        )
    return mapping


def _input_frame(prog: Program, frame: Any, columns: Mapping[str, str] | None,
                 gold_cols: Mapping[str, str]) -> Any:
    """The columns the program reads (gold columns never reach the LM)."""
    if prog.signature is None:
        return frame.drop(columns=[c for c in gold_cols.values() if c in frame.columns])
    columns = columns or {}
    wanted = [columns.get(name, name) for name in prog.input_names]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"The data has no column {', '.join(map(repr, missing))} for the program's inputs "
            f"({', '.join(prog.input_names)}); its columns: {', '.join(map(str, frame.columns))}. "
            "Rename a column or pass columns={'field': 'column'}."
        )
    return frame[wanted]


def score_predictions(prog: Program, frame: Any, predictions: Any, metric: Any,
                      gold_cols: Mapping[str, str], *, kind: str | None = None) -> Any:
    """The per-row table: inputs, predictions, ``gold_<field>``, ``score``, ``error``, usage."""
    import pandas as pd

    if kind is None:
        kind, metric = resolve_metric(metric)
    if len(predictions) != len(frame):
        raise ConfigurationError(
            f"Got {len(predictions)} predictions for {len(frame)} rows; they must pair up."
        )
    outputs = _output_fields(prog, frame, predictions)
    errors = [_error_text(e) for e in _column(predictions, "error", len(frame))]
    if kind == "native":
        scores, metric_errors = _native_scores(metric, predictions, frame, gold_cols), None
    else:
        scores, metric_errors = _row_scores(metric, kind, prog, frame, predictions, outputs,
                                            gold_cols, errors)
    scores = [0.0 if err else s for s, err in zip(scores, errors, strict=True)]
    if metric_errors:
        errors = [e or m for e, m in zip(errors, metric_errors, strict=True)]
    table = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        if col not in gold_cols.values() or col in prog.input_names:
            table[col] = frame[col].to_numpy()
    for name in outputs:
        table[name] = predictions[name].to_numpy()
    for name, col in gold_cols.items():
        table[f"gold_{name}"] = frame[col].to_numpy()
    table["score"] = pd.Series(scores, index=frame.index, dtype="float64")
    table["error"] = pd.Series(errors, index=frame.index, dtype=object)
    for col in BATCH_COLUMNS[1:]:
        if col in predictions.columns:
            table[col] = predictions[col].to_numpy()
    return table


def _output_fields(prog: Program, frame: Any, predictions: Any) -> list[str]:
    names = [c for c in predictions.columns
             if c not in BATCH_COLUMNS and (c not in frame.columns or c in prog.output_names)
             and c not in prog.input_names]
    return names


def _column(frame: Any, name: str, n: int) -> list[Any]:
    return frame[name].tolist() if name in frame.columns else [None] * n


def _error_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text and text not in ("nan", "None", "<NA>") else None


def _native_scores(metric: Metric, predictions: Any, frame: Any,
                   gold_cols: Mapping[str, str]) -> list[float]:
    """The mean over gold fields of the metric, each field scored in one vectorised call."""
    from dspex_lab.router import get_router

    fields = [metric.field] if metric.field else list(gold_cols)
    per_field = []
    for name in fields:
        if name not in gold_cols or name not in predictions.columns:
            raise ConfigurationError(
                f"Metric {metric.name} is bound to {name!r}, but there is no prediction and gold "
                f"column pair for it (gold columns: {dict(gold_cols)})."
            )
        preds, golds = predictions[name].tolist(), frame[gold_cols[name]].tolist()
        op = f"metric.{metric.name}"
        if NATIVE_METRICS.get(metric.name) is not None and \
                NATIVE_METRICS[metric.name]._one is metric._one:
            per_field.append(get_router().call(op, preds, golds, **metric.options))
        else:
            per_field.append(metric.rows(preds, golds))
    return [sum(vals) / len(vals) for vals in zip(*per_field, strict=True)]


def _row_scores(metric: Callable[..., Any], kind: str, prog: Program, frame: Any,
                predictions: Any, outputs: list[str], gold_cols: Mapping[str, str],
                errors: list[str | None]) -> tuple[list[float], list[str | None]]:
    """Call a Python metric once per row (skipping errored rows); scores and metric errors."""
    records = frame.to_dict("records")
    preds = predictions[outputs].to_dict("records") if outputs else [{} for _ in records]
    wrap = _dspy_wrappers(prog) if kind == "dspy" else None
    scores: list[float] = []
    problems: list[str | None] = []
    for record, pred, err in zip(records, preds, errors, strict=True):
        if err:
            scores.append(0.0)
            problems.append(None)
            continue
        gold_row = {**record, **{name: record[col] for name, col in gold_cols.items()}}
        try:
            value = (metric(*wrap(gold_row, pred), None) if wrap
                     else metric(Row(gold_row), Row(pred)))
            scores.append(_as_score(value))
            problems.append(None)
        except Exception as exc:
            scores.append(0.0)
            problems.append(f"metric raised {type(exc).__name__}: {exc}")
    return scores, problems


def _dspy_wrappers(prog: Program) -> Callable[[dict, dict], tuple[Any, Any]]:
    import dspy

    inputs = tuple(prog.input_names)

    def wrap(gold_row: dict, pred: dict) -> tuple[Any, Any]:
        example = dspy.Example(**gold_row)
        return (example.with_inputs(*inputs) if inputs else example), dspy.Prediction(**pred)

    return wrap


def _as_score(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"the metric returned {value!r}; return a number or a bool"
        ) from None


def _metric_name(metric: Any) -> str:
    return getattr(metric, "name", None) or getattr(metric, "__name__", type(metric).__name__)


class _CallableModule(types.ModuleType):
    """``dspex_lab.evaluate`` stays callable even when Python binds this submodule to that name
    (importing ``dspex_lab.evaluate`` sets the package attribute to the module)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
