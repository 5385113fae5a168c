"""``optimize``: compile a program with a DSPy optimizer in the ``optimizer`` worker pool.

The kernel checks the trainset, then sends one task (program, examples, metric, optimizer, LM
spec) to the pool; the worker builds the module and the LM, runs ``optimizer.compile`` exactly
as plain DSPy would (same examples, same metric values, same constructor and ``compile``
arguments, so the same seed gives the same program) and sends back the compiled DSPy state.
The kernel stays responsive, Ctrl-C cancels the task, and a spinner shows the elapsed time.
The optimizer's own output (tqdm bars, logs) is captured in the worker and kept in
``compiled.metadata["log"]`` instead of flooding the notebook.

    >>> compiled = dspex_lab.optimize("question -> answer", train_df, metric="exact_match",
    ...                               optimizer="BootstrapFewShot", max_bootstrapped_demos=2)
    >>> compiled.demos, compiled.save("qa.json")

Optimizers by name: ``GEPA``, ``SIMBA``, ``MIPROv2``, ``BootstrapFewShot``,
``BootstrapFewShotWithRandomSearch``, ``COPRO``, ``LabeledFewShot`` and ``KNNFewShot``; any
DSPy optimizer instance works too. Keyword arguments go to the optimizer's constructor or its
``compile`` (``valset=``, ``seed=``, ``teacher=``...); LM arguments (``reflection_lm``,
``prompt_model``, ``task_model``) take what ``lm=`` takes (a configured name, a model string,
a ``dspy.LM``) and are rebuilt in the worker:

    >>> optimize(prog, train, metric, "GEPA", reflection_lm="strong", auto="light")

The metric decides what the labels are: every column that is not an input travels with the
example under its own name (``example.expected``), as in DSPy. The kernel's ``dspy.settings``
(``dspy.configure(adapter=dspy.JSONAdapter())``, ...) reach the compile as they reach ``run``
(``kernel_settings``). ``compiled.score`` is a percentage, like ``dspy.Evaluate``'s: the
optimizer's own score, else the program's score on ``valset``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import inspect
import io
import json
import re
import sys
import threading
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError
from dspex_lab.evaluate import resolve_metric
from dspex_lab.kernel_settings import KernelSettings, capture
from dspex_lab.persistence import CompiledProgram
from dspex_lab.programs import Program, as_program
from dspex_lab.router import get_router, register

__all__ = ["OPTIMIZERS", "CompileTask", "DspyMetric", "optimize"]

OPTIMIZERS = ("BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "MIPROv2", "COPRO",
              "LabeledFewShot", "GEPA", "SIMBA", "KNNFewShot")
"""Optimizers known by name; any DSPy optimizer instance works too."""

_EXTRAS = {"MIPROv2": (("optuna", "'dspy[optuna]'"),), "GEPA": (("gepa", "gepa"),)}
"""Optional packages an optimizer imports when it runs (checked in the kernel first)."""

LM_OPTIONS = ("reflection_lm", "prompt_model", "task_model")
"""Optimizer arguments that are LMs: resolved like ``lm=`` in the kernel, built in the worker."""

_REQUIRED = {"GEPA": ("reflection_lm", "a dspex_lab LM name, model string or dspy.LM that "
                                       "writes the new instructions"),
             "KNNFewShot": ("vectorizer", "a dspy.Embedder or a function from a list of "
                                          "strings to vectors")}
"""Arguments an optimizer cannot run without, checked in the kernel."""

_PASSES_ON = {"KNNFewShot": "BootstrapFewShot"}
"""Optimizers whose ``**kwargs`` go to another optimizer's constructor."""
_LOG_LINES = 200
_TQDM_LINE = re.compile(r"^(.*: )?\s*\d+%\|")


class DspyMetric:
    """Any metric as DSPy wants it, ``metric(example, prediction, trace=None, pred_name=None,
    pred_trace=None)`` (GEPA's form, which the others accept too); counts calls.

    Native metrics compare the example's labels; ``fn(example, pred)`` callables get the
    Example and Prediction; DSPy metrics get the arguments they take (``pred_name`` and
    ``pred_trace`` only when they accept them). What the metric returns is passed on as is.
    """

    def __init__(self, metric: Any) -> None:
        self.kind, self.metric = resolve_metric(metric)
        self.calls = 0
        self.feedback = self.kind == "dspy" and _accepts(self.metric, 5)

    @property
    def name(self) -> str:
        m = self.metric
        return getattr(m, "name", None) or getattr(m, "__name__", type(m).__name__)

    def __call__(self, example: Any, prediction: Any, trace: Any = None,
                 pred_name: str | None = None, pred_trace: Any = None) -> Any:
        self.calls += 1
        if self.kind == "native":
            return self.metric.dspy(example, prediction, trace)
        if self.kind == "row":
            return self.metric(example, prediction)
        if self.feedback:
            return self.metric(example, prediction, trace, pred_name, pred_trace)
        return self.metric(example, prediction, trace)


def _accepts(fn: Any, n: int) -> bool:
    """True when ``fn`` can be called with ``n`` positional arguments."""
    try:
        inspect.signature(fn).bind(*([None] * n))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): assume the DSPy form
        return False
    return True


@dataclass
class CompileTask:
    """Everything the worker needs; cloudpickled, so notebook-defined metrics travel along."""

    program: Program
    optimizer: Any
    optimizer_kwargs: dict[str, Any]
    metric: DspyMetric | None
    trainset: list[dict[str, Any]]
    valset: list[dict[str, Any]] | None
    input_fields: tuple[str, ...]
    lm: Any
    settings: KernelSettings | None = None  # the kernel's dspy settings (kernel_settings)


def optimize(program: Any, trainset: Any, metric: Any = None, optimizer: Any = "BootstrapFewShot",
             *, lm: Any = None, valset: Any = None, pool: str = "optimizer",
             progress: bool = True, columns: Mapping[str, str] | None = None,
             input_fields: Sequence[str] | None = None, timeout: float | None = None,
             **optimizer_kwargs: Any) -> CompiledProgram:
    """Compile ``program`` on ``trainset`` with a DSPy ``optimizer``; a ``CompiledProgram``.

    ``trainset``/``valset``: a DataFrame, list of dicts or list of ``dspy.Example``; input
    fields come from the program's signature (or ``input_fields``), every other column is a
    label under its own name (the metric reads what it needs); ``columns`` maps field names
    to column names. ``metric``: a native metric or its name, ``fn(example, pred)`` or a DSPy
    metric (GEPA's ``dspy.Prediction(score=..., feedback=...)`` too). Extra keyword arguments
    go to the optimizer's constructor or its ``compile`` (see the module docstring).

    >>> compiled = optimize(prog, train, "exact_match", "BootstrapFewShot",
    ...                     max_bootstrapped_demos=4)
    """
    from dspex_lab.calls import resolve_lm

    prog = as_program(program)
    name = _optimizer_name(optimizer, optimizer_kwargs)
    optimizer_kwargs = {k: resolve_lm(v) if k in LM_OPTIONS and v is not None else v
                        for k, v in optimizer_kwargs.items()}
    if metric is None and isinstance(optimizer, str) and optimizer != "LabeledFewShot":
        raise ConfigurationError(
            f"{optimizer} needs a metric: pass metric='exact_match', 'f1', a function "
            "metric(gold, pred) or a DSPy metric(example, pred, trace=None)."
        )
    dspy_metric = DspyMetric(metric) if metric is not None else None
    inputs = _input_fields(prog, trainset, input_fields)
    train = examples(trainset, inputs, columns, what="trainset")
    val = examples(valset, inputs, columns, what="valset") if valset is not None else None
    spec = resolve_lm(lm)
    task = CompileTask(prog, _sendable(optimizer), dict(optimizer_kwargs), dspy_metric, train,
                       val, inputs, spec, capture())
    start = time.perf_counter()
    error: str | None = None
    with _Spinner(f"optimize {name} ({len(train)} examples)", progress) as spinner:
        try:
            outcome = get_router().call("optimize", task, pool=pool, timeout=timeout)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            spinner.finish(f"optimize {name}: failed ({type(exc).__name__})")
            raise
        finally:
            telemetry.emit("optimize", optimizer=name, examples=len(train), error=error,
                           duration_ms=(time.perf_counter() - start) * 1e3)
        compiled = _compiled(prog, outcome, name, task, time.perf_counter() - start)
        spinner.finish(_summary(compiled))
    return compiled


def _optimizer_name(optimizer: Any, kwargs: Mapping[str, Any]) -> str:
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ConfigurationError(
                f"Unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}, or pass a "
                "DSPy optimizer instance such as dspy.BootstrapFewShot(metric=...)."
            )
        for module, extra in _EXTRAS.get(optimizer, ()):
            if importlib.util.find_spec(module) is None:
                raise ConfigurationError(
                    f"{optimizer} needs the optional package {module!r}, which is not installed; "
                    f"install it with: pip install {extra}"
                )
        if optimizer in _REQUIRED and kwargs.get(_REQUIRED[optimizer][0]) is None:
            arg, what = _REQUIRED[optimizer]
            raise ConfigurationError(
                f"{optimizer} needs {arg}=...: {what}, e.g. optimize(..., "
                f"optimizer={optimizer!r}, {arg}=...)."
            )
        return optimizer
    if not callable(getattr(optimizer, "compile", None)):
        raise ConfigurationError(
            f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a DSPy optimizer instance "
            f"with a compile() method, not {type(optimizer).__name__}."
        )
    if kwargs:
        raise ConfigurationError(
            f"Optimizer options {', '.join(kwargs)} only apply to an optimizer given by name; "
            f"set them on the {type(optimizer).__name__} instance instead."
        )
    return type(optimizer).__name__


_LOCKS = (type(threading.Lock()), type(threading.RLock()))


class _FreshLock:
    """A lock attribute of an optimizer instance on its way to the worker (locks cannot be
    pickled): it arrives as a new lock of the same kind."""

    def __init__(self, lock: Any) -> None:
        self.factory = threading.RLock if isinstance(lock, _LOCKS[1]) else threading.Lock

    def __reduce__(self) -> tuple:
        return (self.factory, ())


def _sendable(optimizer: Any) -> Any:
    """The optimizer as it can travel to the worker: a name as is; an instance copied, with
    its locks (``BootstrapFewShot.error_lock``) replaced by fresh ones (yours is untouched)."""
    attributes = getattr(optimizer, "__dict__", {})
    if isinstance(optimizer, str) or not any(isinstance(v, _LOCKS) for v in attributes.values()):
        return optimizer
    import copy

    clone = copy.copy(optimizer)
    for key, value in attributes.items():
        if isinstance(value, _LOCKS):
            setattr(clone, key, _FreshLock(value))
    return clone


def _input_fields(prog: Program, data: Any, given: Sequence[str] | None) -> tuple[str, ...]:
    if given:
        return tuple(given)
    if prog.input_names:
        return tuple(prog.input_names)
    first = data[0] if isinstance(data, (list, tuple)) and data else None
    keys = getattr(first, "_input_keys", None)
    if keys:
        return tuple(keys)
    raise ConfigurationError(
        f"Cannot tell the input fields of {prog!r} (it has no signature); pass "
        "input_fields=['question', ...] or dspy.Example objects built with .with_inputs(...)."
    )


def examples(data: Any, inputs: Sequence[str], columns: Mapping[str, str] | None, *,
             what: str) -> list[dict[str, Any]]:
    """Plain example dicts (field -> value), checked: the inputs are present (the other
    fields are labels, whatever their names)."""
    rename = {col: name for name, col in (columns or {}).items()}
    if hasattr(data, "columns") and hasattr(data, "to_dict"):
        records = data.rename(columns=rename).to_dict("records")
    elif isinstance(data, (list, tuple)):
        records = [_record(item, rename, what, i) for i, item in enumerate(data)]
    else:
        raise ConfigurationError(
            f"The {what} must be a DataFrame, a list of dicts or a list of dspy.Example, not "
            f"{type(data).__name__}."
        )
    if not records:
        raise ConfigurationError(f"The {what} is empty; give the optimizer a few examples.")
    for i, record in enumerate(records):
        missing = [name for name in inputs if name not in record]
        if missing:
            raise ConfigurationError(
                f"Row {i} of the {what} has no {', '.join(map(repr, missing))} (the program's "
                f"inputs are {', '.join(inputs)}); its fields: {', '.join(map(str, record))}. "
                "Rename the column or pass columns={'field': 'column'}."
            )
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (from a DataFrame) as Python values, as DSPy users build them."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def _record(item: Any, rename: Mapping[str, str], what: str, i: int) -> dict[str, Any]:
    if hasattr(item, "toDict"):
        item = item.toDict()
    if not isinstance(item, Mapping):
        raise ConfigurationError(
            f"Item {i} of the {what} is a {type(item).__name__}; use dicts or dspy.Example."
        )
    return {rename.get(k, k): v for k, v in item.items()}


def _compiled(prog: Program, outcome: dict[str, Any], name: str, task: CompileTask,
              elapsed: float) -> CompiledProgram:
    metadata = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "metric": task.metric.name if task.metric else None,
        "optimizer_kwargs": json.loads(json.dumps(task.optimizer_kwargs, default=str)),
        "trainset_size": len(task.trainset),
        "valset_size": len(task.valset) if task.valset is not None else None,
        "score_source": outcome.get("score_source"),
        "metric_calls": outcome.get("metric_calls"),
        "lm": str(getattr(task.lm, "model", task.lm)),
        "dspy_version": outcome.get("dspy_version"),
        "elapsed_s": round(elapsed, 3),
        "log": outcome.get("log", []),
    }
    from dspex_lab import __version__

    metadata["dspex_lab_version"] = __version__
    if outcome.get("module") is not None:  # the compiled module itself (KNNFewShot)
        prog = Program("module", prog.signature, (), outcome["module"], {})
    return CompiledProgram(prog, outcome["state"], optimizer=name, score=outcome.get("score"),
                           metadata=metadata)


def _summary(compiled: CompiledProgram) -> str:
    score = "" if compiled.score is None else f", score {compiled.score:.3g}%"
    return (f"optimize {compiled.optimizer}: {compiled.demos} demos{score}, "
            f"{compiled.metadata.get('trainset_size')} examples")


class _Spinner:
    """An elapsed-time indicator (tqdm: a widget in Jupyter, text in a terminal)."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self.desc, self.enabled = desc, enabled
        self._bar: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Spinner:
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=None, desc=self.desc, bar_format="{desc} [{elapsed}]")
            if _live_display(self._bar):
                self._thread = threading.Thread(target=self._tick, daemon=True,
                                                name="dspex-optimize-spinner")
                self._thread.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._bar.refresh()

    def finish(self, summary: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(summary, refresh=False)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()


def _live_display(bar: Any) -> bool:
    """Tick the elapsed time only where it redraws in place (a notebook widget or a TTY)."""
    if type(bar).__module__.startswith("tqdm.notebook"):
        return True
    stream = getattr(bar, "fp", None) or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


# -- in the worker ------------------------------------------------------------------------------

def compile_task(task: CompileTask) -> dict[str, Any]:
    """Run the optimizer (in a worker of the optimizer pool); the compiled state and score."""
    import dspy

    from dspex_lab.runtime import build_lm

    lm = build_lm(task.lm)
    student = task.program.build()
    train = [dspy.Example(**r).with_inputs(*task.input_fields) for r in task.trainset]
    val = ([dspy.Example(**r).with_inputs(*task.input_fields) for r in task.valset]
           if task.valset is not None else None)
    settings = task.settings or KernelSettings()
    with settings.context(lm=lm), _captured() as log:
        optimizer, compile_kwargs = _make_optimizer(task, train)
        params = inspect.signature(optimizer.compile).parameters
        if val is not None and "valset" in params:
            compile_kwargs["valset"] = val
        if "trainset" in params:
            compile_kwargs["trainset"] = train
        compiled = optimizer.compile(student, **compile_kwargs)
        score, source = _known_score(compiled)
        if score is None and val is not None and task.metric is not None:
            score, source = _validation_score(compiled, val, task.metric), "valset"
    knn = "forward" in vars(compiled)  # KNNFewShot: picks demos per call, no state carries it
    if knn:
        for _, predictor in compiled.named_predictors():  # so that its cache key is its own
            predictor.train = list(task.trainset)
    outcome = {"state": compiled.dump_state(), "score": score, "score_source": source,
               "metric_calls": task.metric.calls if task.metric else 0,
               "dspy_version": dspy.__version__, "log": _tail(log.getvalue())}
    if knn:
        outcome["module"] = compiled
    return outcome


def _make_optimizer(task: CompileTask, train: list[Any]) -> tuple[Any, dict[str, Any]]:
    """The optimizer instance, and the keyword arguments meant for its ``compile``: each
    option goes where the optimizer's own signature takes it."""
    if not isinstance(task.optimizer, str):
        return task.optimizer, {}
    import dspy

    from dspex_lab.runtime import build_lm

    cls = getattr(dspy, task.optimizer)
    init = inspect.signature(cls.__init__).parameters
    comp = inspect.signature(cls.compile).parameters
    inner = _PASSES_ON.get(task.optimizer)
    more = inspect.signature(getattr(dspy, inner).__init__).parameters if inner else {}
    init_kw: dict[str, Any] = {}
    compile_kw: dict[str, Any] = {}
    for key, value in task.optimizer_kwargs.items():
        if key in LM_OPTIONS and value is not None:
            value = build_lm(value)
        if key in init and key not in ("self", "trainset"):
            init_kw[key] = value
        elif key in comp and key not in ("self", "student", "trainset"):
            compile_kw[key] = value
        elif key in more and key not in ("self", "metric"):
            init_kw[key] = value  # passed on (KNNFewShot -> BootstrapFewShot)
        else:
            known = sorted({*init, *comp, *more} - {"self", "student", "trainset", "metric",
                                                    "_kwargs", "kwargs",
                                                    "few_shot_bootstrap_args"})
            raise ConfigurationError(
                f"{task.optimizer} has no option {key!r}; its options: {', '.join(known)}."
            )
    if ("metric" in init or "metric" in more) and task.metric is not None:
        init_kw["metric"] = task.metric
    if "trainset" in init:
        init_kw["trainset"] = train
    if "vectorizer" in init_kw and not isinstance(init_kw["vectorizer"], dspy.Embedder):
        init_kw["vectorizer"] = dspy.Embedder(init_kw["vectorizer"])
    return cls(**init_kw), compile_kw


def _known_score(compiled: Any) -> tuple[float | None, str | None]:
    """The score an optimizer attached (a percentage, as DSPy reports it)."""
    score = getattr(compiled, "score", None)
    if isinstance(score, (int, float)):
        return float(score), "optimizer"
    candidates = getattr(compiled, "candidate_programs", None)
    if candidates and isinstance(candidates[0], dict) and "score" in candidates[0]:
        return float(candidates[0]["score"]), "optimizer"
    return None, None


def _validation_score(compiled: Any, valset: list[Any], metric: DspyMetric) -> float:
    import dspy

    evaluator = dspy.Evaluate(devset=valset, metric=metric, num_threads=1,
                              display_progress=False, max_errors=len(valset) + 1)
    return float(evaluator(compiled).score)


@contextlib.contextmanager
def _captured() -> Any:
    """Capture stdout and stderr (prints, tqdm bars, DSPy's log lines) while compiling."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


def _tail(text: str) -> list[str]:
    """The last lines of the optimizer's output, without tqdm's intermediate bar states."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not _TQDM_LINE.match(line)]
    return lines[-_LOG_LINES:]


register("optimize", "pool", compile_task, pool="optimizer",
         doc="optimize: a DSPy optimizer's compile() in the optimizer pool")


class _CallableModule(types.ModuleType):
    """``dspex_lab.optimize`` stays callable even when Python binds this submodule to that name
    (importing ``dspex_lab.optimize`` sets the package attribute to the module)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
