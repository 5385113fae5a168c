"""``Pipeline.to_dspy()``: the pipeline as a ``dspy.Module``, and optimized state back.

Each DSPy step becomes a real submodule (``Predict``, ``ChainOfThought``, ``ReAct`` or the
step's own module) stored under the step's name, so ``named_predictors()`` lists
``answer.predict`` and the like, and optimizers (``BootstrapFewShot``, MIPRO) and
``dspy.Evaluate`` work on it. ``forward`` runs the same step logic as ``pipeline(...)`` but
in-process and one branch after the other (DSPy traces need that); native steps run where the
module runs (the kernel, or a batch worker). A row is bounded by ``to_dspy(timeout=)``, else by
the active LM's ``timeout`` (what ``batch.run(..., timeout=)`` sets in workers): a step still
running then fails the row with ``StepTimeout``.

    >>> module = pipeline.to_dspy()
    >>> [name for name, _ in module.named_predictors()]
    ['answer.predict']
    >>> compiled = dspy.BootstrapFewShot(metric=metric).compile(module, trainset=train)
    >>> better = pipeline.with_dspy_state(compiled)      # demos back in the pipeline
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dspy

from dspex_lab.errors import PipelineError, StepTimeout
from dspex_lab.pipeline.run import Leaf, Runner, StepFailed
from dspex_lab.pipeline.steps import DSPyStep, NativeStep, When, walk

if TYPE_CHECKING:
    from dspex_lab.pipeline.core import Pipeline

__all__ = ["PipelineModule", "build_step_module", "predictor_states", "states_from"]

_INSTANCE_ATTRS = {"callbacks", "history", "_compiled"}


class PipelineModule(dspy.Module):
    """A pipeline as a DSPy module; ``forward(**inputs)`` returns a ``dspy.Prediction``."""

    def __init__(self, pipeline: Pipeline, *, full_state: bool = False,
                 timeout: float | None = None) -> None:
        super().__init__()
        self._pipeline = pipeline
        self._full_state = full_state
        self._timeout = timeout
        self._attrs: dict[str, str] = {}
        reserved = set(dir(type(self))) | _INSTANCE_ATTRS
        for step in pipeline.dspy_steps:
            attr = step.name if step.name not in reserved else f"step_{step.name}"
            self._attrs[step.name] = attr
            setattr(self, attr, build_step_module(step))

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline this module was built from (without optimized state; see
        ``to_pipeline``)."""
        return self._pipeline

    def forward(self, **inputs: Any) -> Any:
        """Run the pipeline on ``inputs`` inside DSPy; returns a ``dspy.Prediction``."""
        timeout = self._timeout
        if timeout is None:  # a batch row: the LM's per-call timeout bounds the row too
            timeout = getattr(dspy.settings.lm, "kwargs", {}).get("timeout")
        runner = Runner(self._pipeline.plan, self._pipeline.name, self._call,
                        continue_on_error=False, concurrent=False, emit=False,
                        timeout=timeout if isinstance(timeout, int | float) else None)
        try:
            result = runner.run(inputs)
        except StepFailed as exc:  # a timeout keeps its class: the row's error_type
            timeout_error = next((e for e in exc.errors if isinstance(e, StepTimeout)), None)
            if timeout_error is not None:
                raise timeout_error from None
            raise
        fields = dict(result.state) if self._full_state else result.outputs
        return dspy.Prediction(**fields)

    def _call(self, step: DSPyStep, values: dict[str, Any], timeout: float | None) -> Leaf:
        module = getattr(self, self._attrs[step.name])
        if step.lm is None:
            pred = module(**values)
        else:
            from dspex_lab.calls import resolve_lm
            from dspex_lab.runtime import build_lm

            with dspy.context(lm=build_lm(resolve_lm(step.lm))):
                pred = module(**values)
        return Leaf(dict(pred.items()), "inline")

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """DSPy's state plus the pipeline's fingerprint (tells pipelines apart in caches)."""
        state = super().dump_state(json_mode=json_mode)
        state["_dspex_pipeline"] = fingerprint(self._pipeline)  # tells pipelines apart in caches
        return state

    def to_pipeline(self) -> Pipeline:
        """The pipeline with this module's (optimized) demos and instructions."""
        return self._pipeline.with_dspy_state(self)

    def __repr__(self) -> str:
        subs = ", ".join(f"{a}={type(getattr(self, a)).__name__}" for a in self._attrs.values())
        return f"PipelineModule({self._pipeline.name!r}, {subs})"


def build_step_module(step: DSPyStep) -> Any:
    """A fresh ``dspy.Module`` for ``step`` with its saved predictor state applied."""
    if step.custom is not None:
        module = copy.deepcopy(step.custom)
    else:
        from dspex_lab.programs import Program

        kind = "cot" if step.module == "chain_of_thought" else step.module
        module = Program(kind, step.signature, tuple(step.tools), None,
                         dict(step.options)).build()
    apply_state(module, step.state, step.name)
    return module


def apply_state(module: Any, state: Mapping[str, Any], step: str) -> None:
    """Set demos/instructions on ``module``'s predictors from ``{path: {...}}``."""
    if not state:
        return
    predictors = dict(module.named_predictors())
    for path, st in state.items():
        pred = predictors.get(path)
        if pred is None:
            raise PipelineError(
                f"Step {step!r} has saved state for predictor {path!r}, but its module has "
                f"predictors {', '.join(predictors) or '(none)'}; the step's module changed "
                "since the state was saved.", step=step)
        if "demos" in st:
            pred.demos = [dspy.Example(**d) for d in st["demos"]]
        if st.get("instructions") is not None:
            pred.signature = pred.signature.with_instructions(st["instructions"])


def predictor_states(module: Any, default: Any = None) -> dict[str, Any]:
    """``{path: {"demos": [...], "instructions": ...}}`` for predictors that carry state.

    Instructions are kept only when they differ from those of ``default`` (a fresh module).
    """
    base = dict(default.named_predictors()) if default is not None else {}
    out: dict[str, Any] = {}
    for path, pred in module.named_predictors():
        entry: dict[str, Any] = {}
        if pred.demos:
            entry["demos"] = [_demo_dict(d) for d in pred.demos]
        instr = pred.signature.instructions
        if path in base and instr != base[path].signature.instructions:
            entry["instructions"] = instr
        if entry:
            out[path] = entry
    return out


def states_from(pipeline: Pipeline, source: Any) -> dict[str, dict[str, Any]]:
    """Per-step predictor state from a ``PipelineModule``, its ``dump_state()`` dict, or a
    ``CompiledProgram`` (``dspex_lab.optimize(pipeline, ...)``)."""
    if not isinstance(source, PipelineModule | Mapping):
        source = getattr(source, "state", source)  # a CompiledProgram from dspex_lab.optimize
    if isinstance(source, PipelineModule):
        module = source
    elif isinstance(source, Mapping):
        module = PipelineModule(pipeline)
        module.load_state({k: v for k, v in source.items() if k != "_dspex_pipeline"})
    else:
        raise PipelineError(f"Expected a module from pipeline.to_dspy() or its dump_state(), got "
                            f"{type(source).__name__}.")
    states: dict[str, dict[str, Any]] = {}
    for step in pipeline.dspy_steps:
        attr = module._attrs.get(step.name)
        if attr is None:
            raise PipelineError(f"The module has no step {step.name!r}; it was built from "
                                "another pipeline.", step=step.name)
        fresh = build_step_module(step.with_state({}))
        states[step.name] = predictor_states(getattr(module, attr), fresh)
    return states


def fingerprint(pipeline: Pipeline) -> str:
    """A short hash of the pipeline's structure and code (not of its optimized state): its
    steps, their functions' code and the globals they read, modules, tools (see
    ``dspex_lab.identity``)."""
    from dspex_lab.identity import fingerprint as identity

    parts = [pipeline.name, str(pipeline.plan.inputs), str(pipeline.plan.outputs)]
    for s in walk(pipeline.steps):
        parts.append(f"{s.kind}:{s.name}:{s.reads}:{s.writes}")
        if isinstance(s, NativeStep):
            parts.append(_code_id(s.fn))
        elif isinstance(s, DSPyStep):
            parts.append(f"{s.module}:{s.signature}:{s.signature.instructions}:{s.options}"
                         f":{[_code_id(t) for t in s.tools]}:{type(s.custom).__qualname__}"
                         f":{identity((s.signature, s.tools, s.custom))}")
        elif isinstance(s, When):
            parts.append(_code_id(s.condition))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _code_id(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if hasattr(obj, "text") and hasattr(obj, "variables"):
        return f"template:{obj.text}"
    from dspex_lab.identity import fingerprint as identity

    code = getattr(obj, "__code__", None)
    body = identity(obj)[:16] if code is not None else ""
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', repr(obj))}:{body}"


def _demo_dict(demo: Any) -> dict[str, Any]:
    if hasattr(demo, "toDict"):
        return dict(demo.toDict())
    return dict(demo)
