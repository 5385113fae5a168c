"""``evaluate``: run a program over labelled rows and score every prediction, as DSPy does.

Predictions come from ``dspex_lab.batch.run`` (pools, cache, retries, progress); the metric
runs in the kernel afterwards, on what ``dspy.Evaluate`` would give it: each row is a
``dspy.Example`` whose inputs are the program's input fields and which carries every other
column as a label under its own name, and each prediction a ``dspy.Prediction`` with the
outputs under their own names (never renamed). A metric is

- a native metric (``exact_match``, ``f1``, ``accuracy``, or its name), vectorised over the
  columns: each output is compared with the column of the same name (or ``gold=``);
- ``metric(example, pred)``, or a DSPy metric ``metric(example, pred, trace=None)`` (GEPA's
  five-argument form too), returning a bool, a number or ``dspy.Prediction(score=...,
  feedback=...)``.

``score`` is DSPy's percentage, ``round(100 * sum(row scores) / rows, 2)``, rows that errored
counting 0: ``dspy.Evaluate(devset=..., metric=...)(program).score`` gives the same number on
the same rows. Rows that never ran (status ``not_run``: the run was interrupted, cancelled,
stopped at its budget...) are not scored: their score is NaN, ``n_not_scored`` counts them
and ``score`` is over the scored rows (the repr says so); ``not_scored()`` lists them.
``results`` is DSPy's list of ``(example, prediction, score)``; ``table`` is a DataFrame
with two levels of columns, so that a label and an output of the same name both keep it:
``("example", column)`` for every column of the data as given, ``("pred", field)`` for every
output (``reasoning`` too), then ``score``, ``feedback`` (when the metric gave some),
``error``, latency, tokens, cost and ``cached`` (``table["score"]`` is a plain column).

    >>> res = dspex_lab.evaluate("question -> answer", df, metric="exact_match")
    >>> res.score
    100.0
    >>> res.table.columns.tolist()[:4]
    [('example', 'question'), ('example', 'answer'), ('pred', 'answer'), ('score', '')]
    >>> res.table["pred"]["answer"].tolist() == res.table["example"]["answer"].tolist()
    True
    >>> dspex_lab.evaluate(prog, devset, metric=lambda example, pred: example.answer == pred.answer)
"""

from __future__ import annotations

import html
import inspect
import math
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dspex_lab import telemetry
from dspex_lab.batch.status import NOT_RUN
from dspex_lab.errors import ConfigurationError
from dspex_lab.kinds import RESULT_COLUMNS
from dspex_lab.native.metrics import Metric, accuracy, exact_match, f1
from dspex_lab.programs import Program, as_program

__all__ = ["BATCH_COLUMNS", "EvaluationResult", "ExampleView", "as_score", "dspy_score",
           "evaluate", "resolve_metric", "score_predictions"]

BATCH_COLUMNS = RESULT_COLUMNS
"""The bookkeeping columns ``batch.run`` adds next to the output fields (``kinds``)."""

NATIVE_METRICS: dict[str, Metric] = {m.name: m for m in (exact_match, f1, accuracy)}


@dataclass(frozen=True)
class ExampleView:
    """How a data row becomes a ``dspy.Example``: its ``inputs`` (field names), the
    ``columns`` they read (field -> column) and the ``gold`` aliases (output -> column) the
    caller asked for. Every other column is a label under its own name."""

    inputs: tuple[str, ...]
    columns: Mapping[str, str] = field(default_factory=dict)
    gold: Mapping[str, str] = field(default_factory=dict)

    def record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The example's fields for one row of the data (plain Python values)."""
        rename = {col: name for name, col in self.columns.items()}
        rec = {rename.get(k, k): _plain(v) for k, v in row.items()}
        for name, col in self.gold.items():
            rec.setdefault(name, _plain(row[col]))
        return rec

    def examples(self, frame: Any) -> list[Any]:
        """One ``dspy.Example`` per row of ``frame``, inputs marked."""
        import dspy

        return [dspy.Example(**self.record(row)).with_inputs(*self.inputs)
                for row in frame.to_dict("records")]


@dataclass
class EvaluationResult:
    """The outcome of ``evaluate``: ``score`` (DSPy's percentage), ``table`` (see the module
    docstring), ``results`` (DSPy's ``(example, prediction, score)`` list).

    >>> res.score, len(res.failures())
    (75.0, 2)
    """

    score: float
    table: Any
    metric: str
    program: str = ""
    gold: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    view: ExampleView | None = field(default=None, repr=False)
    devset: list[Any] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def n_errors(self) -> int:
        return int((self.table["error"].notna() & self._scored).sum())

    @property
    def n_not_scored(self) -> int:
        """Rows that never ran (status ``not_run``), left out of ``score``."""
        return int((~self._scored).sum())

    @property
    def _scored(self) -> Any:
        import pandas as pd

        if "status" not in self.table.columns.get_level_values(0):
            return pd.Series(True, index=self.table.index)
        return self.table["status"] != NOT_RUN

    def failures(self, threshold: float = 1.0) -> Any:
        """The rows that errored or scored below ``threshold`` (rows not run are not here)."""
        table = self.table
        return table[(table["error"].notna() | (table["score"] < threshold)) & self._scored]

    def errors(self) -> Any:
        """The rows whose call (or metric) raised; their ``error`` column says why."""
        return self.table[self.table["error"].notna() & self._scored]

    def not_scored(self) -> Any:
        """The rows that never ran (interrupted, cancelled...): a re-run computes them."""
        return self.table[~self._scored]

    @property
    def results(self) -> list[tuple[Any, Any, float]]:
        """``(dspy.Example, dspy.Prediction, score)`` per row, as ``dspy.Evaluate`` returns
        them (a row that errored has an empty prediction and score 0)."""
        import dspy

        examples = self.devset
        if examples is None:
            view = self.view or ExampleView(())
            examples = view.examples(self.table["example"])
        preds = _records(self.table["pred"])
        return [(ex, dspy.Prediction(**p) if not err else dspy.Prediction(), s)
                for ex, p, err, s, scored in zip(examples, preds, self.table["error"].notna(),
                                                 self.table["score"].tolist(),
                                                 self._scored.tolist(), strict=True) if scored]

    @property
    def usage(self) -> dict[str, float]:
        """Token and cost totals over the rows."""
        return {col: float(self.table[col].fillna(0).sum())
                for col in ("prompt_tokens", "completion_tokens", "cost") if col in self.table}

    def __float__(self) -> float:
        return float(self.score)

    def _summary(self) -> list[tuple[str, str]]:
        items = [("metric", self.metric), ("score", f"{self.score:g}%"), ("rows", str(self.n)),
                 ("errors", str(self.n_errors)), ("failures", str(len(self.failures()))),
                 ("time", f"{self.elapsed_s:.2f} s")]
        if self.n_not_scored:
            items.insert(3, ("not_scored", f"{self.n_not_scored} (never ran; the score is over "
                                           f"the {self.n - self.n_not_scored} scored rows)"))
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
    """``(kind, metric)``: kind is ``native``, ``row`` (``fn(example, pred)``) or ``dspy``
    (``fn(example, pred, trace=None)``). Strings name native metrics."""
    if isinstance(metric, str):
        try:
            return "native", NATIVE_METRICS[metric]
        except KeyError:
            raise ConfigurationError(
                f"Unknown metric {metric!r}; use one of {', '.join(NATIVE_METRICS)} or pass a "
                "callable metric(example, pred)."
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
             input_fields: Sequence[str] | None = None, lm: Any = None,
             **run_kwargs: Any) -> EvaluationResult:
    """Run ``program`` on ``data`` and score each row with ``metric``; an ``EvaluationResult``.

    ``data``: a DataFrame, Arrow table, list of dicts or list of ``dspy.Example`` (their own
    inputs are used when the program has no signature). ``columns`` maps input fields to
    columns, as in ``run``; ``input_fields`` names the inputs of a module without a signature
    whose ``forward`` takes ``**kwargs``. ``gold`` maps output fields to the columns a native
    metric compares them with (default: the columns named like the outputs; a string when the
    program has one output); the example also gets the output's name as a label. Other keyword
    arguments go to ``dspex_lab.batch.run`` (``module="cot"``, ``pool``, ``cache``,
    ``progress``, ...).

    >>> evaluate("question -> answer", df, metric="f1", gold={"answer": "expected"}).score
    """
    from dspex_lab import batch

    prog = as_program(program, module=run_kwargs.pop("module", "predict"))
    kind, fn = resolve_metric(metric)
    frame, devset = as_frame(data)
    if len(frame) == 0:
        raise ConfigurationError("evaluate() got no rows; pass a DataFrame, a list of dicts or "
                                 "a list of dspy.Example with at least one labelled row.")
    columns = dict(columns or {})
    inputs = _inputs(prog, frame, devset, columns, input_fields)
    gold_cols = gold_columns(prog, frame, gold, needed=kind == "native" and bool(prog.output_names))
    view = ExampleView(inputs, columns, gold_cols if gold is not None else {})
    start = time.perf_counter()
    predictions = batch.run(prog, _input_frame(frame, view), lm=lm, **run_kwargs)
    table = score_predictions(prog, frame, predictions, fn, gold_cols, kind=kind, view=view,
                              devset=devset)
    score = dspy_score(table["score"].tolist())
    result = EvaluationResult(score=score, table=table, metric=_metric_name(fn),
                              program=repr(prog), gold=gold_cols,
                              elapsed_s=time.perf_counter() - start, view=view, devset=devset)
    telemetry.emit("evaluate", metric=result.metric, score=score, rows=len(table),
                   errors=result.n_errors, not_scored=result.n_not_scored,
                   duration_ms=result.elapsed_s * 1e3)
    return result


def dspy_score(scores: Sequence[float]) -> float:
    """The score ``dspy.Evaluate`` reports: the percentage of the sum, rounded to 2 places.
    NaN scores (rows that never ran) are left out."""
    scores = [s for s in scores if not math.isnan(s)]
    return round(100 * sum(scores) / len(scores), 2) if scores else 0.0


def as_frame(data: Any) -> tuple[Any, list[Any] | None]:
    """A pandas DataFrame from a DataFrame, an Arrow table/stream, a list of dicts or Examples;
    and the ``dspy.Example`` objects themselves when that is what was given."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data, None
    if hasattr(data, "to_pandas"):
        return data.to_pandas(), None
    if hasattr(data, "__arrow_c_stream__"):
        import pyarrow as pa

        return pa.table(data).to_pandas(), None
    if isinstance(data, (list, tuple)):
        if data and all(hasattr(r, "toDict") and hasattr(r, "inputs") for r in data):
            return pd.DataFrame([r.toDict() for r in data]), list(data)
        return pd.DataFrame([r.toDict() if hasattr(r, "toDict") else dict(r) for r in data]), None
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data)), None
    raise ConfigurationError(
        f"Cannot evaluate on a {type(data).__name__}; pass a pandas DataFrame, a pyarrow Table, "
        "a list of dicts or a list of dspy.Example."
    )


def _inputs(prog: Program, frame: Any, devset: list[Any] | None, columns: Mapping[str, str],
            given: Sequence[str] | None) -> tuple[str, ...]:
    """The program's input fields, checked against the data before any LM call."""
    from dspex_lab.batch.inputs import input_fields

    if given:
        names = tuple(given)
    elif prog.input_names:
        names = tuple(prog.input_names)
    elif devset is not None and getattr(devset[0], "_input_keys", None):
        names = tuple(sorted(devset[0]._input_keys))
    else:
        names = tuple(input_fields(prog, []))
        if not names:
            raise ConfigurationError(
                f"Cannot tell which columns {prog!r} reads (its forward takes **kwargs); pass "
                "input_fields=['question', ...] or dspy.Example objects built with "
                ".with_inputs(...)."
            )
    missing = [columns.get(n, n) for n in names if columns.get(n, n) not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"The data has no column {', '.join(map(repr, missing))} for the program's inputs "
            f"({', '.join(names)}); its columns: {', '.join(map(str, frame.columns))}. "
            "Rename a column or pass columns={'field': 'column'}."
        )
    return names


def gold_columns(prog: Program, frame: Any, gold: str | Mapping[str, str] | None, *,
                 needed: bool) -> dict[str, str]:
    """Output field -> the column a native metric compares it with, checked before any call."""
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


def _input_frame(frame: Any, view: ExampleView) -> Any:
    """Only the input fields, named as fields (labels never reach the LM)."""
    cols = [view.columns.get(name, name) for name in view.inputs]
    return frame[cols].set_axis(list(view.inputs), axis=1)


def prediction_frame(predictions: Any, inputs: Sequence[str]) -> Any:
    """The output columns of a ``batch.run`` result under their own names (``run`` suffixes
    an output named like an input with ``_pred``; that is undone here)."""
    outputs = {}
    for col in list(predictions.columns)[len(inputs):]:
        if col in BATCH_COLUMNS:
            continue
        name = col[:-5] if col.endswith("_pred") and col[:-5] in inputs else col
        outputs[name] = predictions[col]
    import pandas as pd

    return pd.DataFrame(outputs, index=predictions.index)


def score_predictions(prog: Program, frame: Any, predictions: Any, metric: Any,
                      gold_cols: Mapping[str, str] | None = None, *, kind: str | None = None,
                      view: ExampleView | None = None, devset: list[Any] | None = None) -> Any:
    """The per-row table (see the module docstring) for ``batch.run``'s ``predictions``."""
    import pandas as pd

    if kind is None:
        kind, metric = resolve_metric(metric)
    if len(predictions) != len(frame):
        raise ConfigurationError(
            f"Got {len(predictions)} predictions for {len(frame)} rows; they must pair up."
        )
    view = view or ExampleView(tuple(prog.input_names))
    preds = prediction_frame(predictions, view.inputs)
    errors = [_error_text(e) for e in _column(predictions, "error", len(frame))]
    not_run = [s == NOT_RUN for s in _column(predictions, "status", len(frame))]
    feedback: list[Any] = [None] * len(frame)
    if kind == "native":
        gold_cols = dict(gold_cols or {}) or _same_named(frame, preds, view)
        scores = _native_scores(metric, preds, frame, gold_cols)
    else:
        skip = [e or ("not run" if n else None) for e, n in zip(errors, not_run, strict=True)]
        scores, feedback, problems = _callable_scores(metric, kind, frame, preds, skip, view,
                                                      devset)
        errors = [e or p for e, p in zip(errors, problems, strict=True)]
    scores = [math.nan if n else 0.0 if err else s
              for s, err, n in zip(scores, errors, not_run, strict=True)]
    table = pd.concat({"example": frame, "pred": preds.set_axis(frame.index)}, axis=1)
    table[("score", "")] = pd.Series(scores, index=frame.index, dtype="float64")
    if any(f is not None for f in feedback):
        table[("feedback", "")] = pd.Series(feedback, index=frame.index, dtype=object)
    table[("error", "")] = pd.Series(errors, index=frame.index, dtype=object)
    for col in BATCH_COLUMNS[1:]:
        if col in predictions.columns:
            table[(col, "")] = predictions[col].to_numpy()
    return table


def _same_named(frame: Any, preds: Any, view: ExampleView) -> dict[str, str]:
    """Gold columns for a program whose outputs were unknown before it ran: the labels named
    like an output."""
    read = {view.columns.get(n, n) for n in view.inputs}
    mapping = {n: n for n in preds.columns if n in frame.columns and n not in read}
    if not mapping:
        raise ConfigurationError(
            f"The metric compares outputs with gold answers, but no column of the data is named "
            f"like an output ({', '.join(map(str, preds.columns))}). Add one, or map it: "
            "gold={'answer': 'expected_answer'}."
        )
    return mapping


def _column(frame: Any, name: str, n: int) -> list[Any]:
    return frame[name].tolist() if name in frame.columns else [None] * n


def _error_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text and text not in ("nan", "None", "<NA>") else None


def _plain(value: Any) -> Any:
    """A cell as a plain Python value: arrays as lists, missing values as None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records(frame: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def _native_scores(metric: Metric, preds: Any, frame: Any,
                   gold_cols: Mapping[str, str]) -> list[float]:
    """The mean over gold fields of the metric, each field scored in one vectorised call."""
    from dspex_lab.router import get_router

    fields = [metric.field] if metric.field else list(gold_cols)
    per_field = []
    for name in fields:
        if name not in gold_cols or name not in preds.columns:
            raise ConfigurationError(
                f"Metric {metric.name} is bound to {name!r}, but there is no prediction and gold "
                f"column pair for it (gold columns: {dict(gold_cols)})."
            )
        values, golds = preds[name].tolist(), frame[gold_cols[name]].tolist()
        op = f"metric.{metric.name}"
        if NATIVE_METRICS.get(metric.name) is not None and \
                NATIVE_METRICS[metric.name]._one is metric._one:
            per_field.append(get_router().call(op, values, golds, **metric.options))
        else:
            per_field.append(metric.rows(values, golds))
    return [sum(vals) / len(vals) for vals in zip(*per_field, strict=True)]


def _callable_scores(metric: Callable[..., Any], kind: str, frame: Any, preds: Any,
                     errors: list[str | None], view: ExampleView, devset: list[Any] | None
                     ) -> tuple[list[float], list[Any], list[str | None]]:
    """Call a Python metric once per row, as ``dspy.Evaluate`` does (skipping rows that
    errored): the scores, the feedback and the metric's own errors."""
    import dspy

    examples = devset if devset is not None else view.examples(frame)
    scores: list[float] = []
    feedback: list[Any] = []
    problems: list[str | None] = []
    for example, pred, err in zip(examples, _records(preds), errors, strict=True):
        score, note, problem = 0.0, None, None
        if not err:
            try:
                value = (metric(example, dspy.Prediction(**pred)) if kind == "row"
                         else metric(example, dspy.Prediction(**pred), None))
                score, note = as_score(value)
            except Exception as exc:
                problem = f"metric raised {type(exc).__name__}: {exc}"
        scores.append(score)
        feedback.append(note)
        problems.append(problem)
    return scores, feedback, problems


def as_score(value: Any) -> tuple[float, str | None]:
    """A metric's value as ``(score, feedback)``: a bool, a number, or anything with a
    ``score`` (GEPA's ``dspy.Prediction(score=..., feedback=...)``)."""
    feedback = None
    if not isinstance(value, (bool, int, float)) and hasattr(value, "score"):
        feedback = getattr(value, "feedback", None)
        value = value.score
    try:
        return float(value), (None if feedback is None else str(feedback))
    except (TypeError, ValueError):
        raise TypeError(
            f"the metric returned {value!r}; return a bool, a number or "
            "dspy.Prediction(score=..., feedback=...)"
        ) from None


def _metric_name(metric: Any) -> str:
    return getattr(metric, "name", None) or getattr(metric, "__name__", type(metric).__name__)


class _CallableModule(types.ModuleType):
    """``dspex_lab.evaluate`` stays callable even when Python binds this submodule to that name
    (importing ``dspex_lab.evaluate`` sets the package attribute to the module)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
