"""``PipelineDraft``: an editable list of pipeline steps (the model of ``PipelineBuilder``).

Each ``StepDraft`` is plain data that becomes one step of ``dspex_lab.pipeline``:

* ``dspy``: a module (``predict`` or ``cot``) on a signature -> ``dspy_step``;
* ``native``: a function looked up by name in a namespace (the notebook's) -> ``native``;
* ``parallel``: several signatures run side by side -> ``parallel(dspy_step(...), ...)``;
* ``when``: a signature run only when a field is truthy -> ``when(field, dspy_step(...))``.

The draft builds a real ``Pipeline`` (so wiring errors are the pipeline's own
``PipelineError``s), tries it on a sample row and exports its code. Works without Jupyter.

    >>> draft = PipelineDraft(name="qa")
    >>> draft.add("dspy", signature="question -> answer", module="cot")
    >>> draft.add("parallel", branches=["answer -> summary", "answer -> keywords: list[str]"])
    >>> draft.pipeline.outputs
    ('answer', 'summary', 'keywords')
    >>> draft.try_row({"question": "What is 2 + 3?"}, implementation="native").answer
    '5'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.errors import DspexError, PipelineError

__all__ = ["STEP_KINDS", "PipelineDraft", "StepDraft"]

STEP_KINDS = ("dspy", "native", "parallel", "when")
"""What the builder can add: a DSPy module, a notebook function, a parallel group, a
condition."""


@dataclass
class StepDraft:
    """One step being edited; which attributes matter depends on ``kind`` (module docstring).
    ``name`` is optional (the pipeline names steps after their outputs)."""

    kind: str = "dspy"
    signature: str = ""
    module: str = "predict"
    function: str = ""
    output: str = ""
    branches: list[str] = field(default_factory=list)
    condition: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise PipelineError(f"Unknown step kind {self.kind!r}; use one of: "
                                f"{', '.join(STEP_KINDS)}.")

    def to_step(self, namespace: Mapping[str, Any]) -> Any:
        """The pipeline step (raises ``PipelineError`` naming what is missing)."""
        from dspex_lab.pipeline import dspy_step, native, parallel, when

        name = self.name.strip() or None
        if self.kind == "dspy":
            return dspy_step(self._sig(self.signature), self.module, name=name)
        if self.kind == "native":
            fn = _function(self.function, namespace)
            return native(fn, output=self.output.strip() or None, name=name)
        if self.kind == "parallel":
            sigs = [b for b in self.branches if b.strip()]
            if not sigs:
                raise PipelineError("A parallel group needs at least one branch signature, "
                                    "one per line (e.g. 'answer -> summary').", step=name)
            return parallel(*(dspy_step(self._sig(s), self.module) for s in sigs), name=name)
        if not self.condition.strip():
            raise PipelineError("A condition step needs the name of the field to test "
                                "(e.g. 'needs_review').", step=name)
        then = dspy_step(self._sig(self.signature), self.module)
        return when(self.condition.strip(), then, name=name)

    def _sig(self, text: str) -> str:
        if not text.strip():
            raise PipelineError(f"This {self.kind} step needs a signature, e.g. "
                                "'question -> answer'.", step=self.name or None)
        return text.strip()

    def describe(self) -> str:
        """A one-line summary for lists: ``cot: question -> answer``."""
        label = f"{self.name}: " if self.name else ""
        if self.kind == "dspy":
            return f"{label}{self.module}  {self.signature}"
        if self.kind == "native":
            out = f" -> {self.output}" if self.output else ""
            return f"{label}native  {self.function}(){out}"
        if self.kind == "parallel":
            return f"{label}parallel  " + "  |  ".join(b for b in self.branches if b.strip())
        return f"{label}when {self.condition}:  {self.module}  {self.signature}"


def _function(name: str, namespace: Mapping[str, Any]) -> Callable[..., Any]:
    fn = namespace.get(name.strip()) if name.strip() else None
    if not callable(fn):
        known = sorted(n for n, v in namespace.items()
                       if inspect.isfunction(v) and not n.startswith("_"))
        hint = f" Functions there: {', '.join(known)}." if known else ""
        raise PipelineError(f"No function named {name!r} in the notebook namespace; define it "
                            f"first (def {name or 'my_step'}(...): ...).{hint}")
    return fn


@dataclass
class PipelineDraft:
    """Ordered ``StepDraft``s, a pipeline name and the namespace native steps come from."""

    steps: list[StepDraft] = field(default_factory=list)
    name: str = "pipeline"
    namespace: Mapping[str, Any] = field(default_factory=dict)

    def add(self, kind: str = "dspy", **attrs: Any) -> StepDraft:
        """Append a step (``StepDraft`` attributes as keywords) and return it."""
        step = StepDraft(kind, **attrs)
        self.steps.append(step)
        return step

    def remove(self, index: int) -> StepDraft:
        """Remove and return the step at ``index``."""
        return self.steps.pop(index)

    def move(self, index: int, offset: int) -> int:
        """Move step ``index`` by ``offset`` (-1 up, +1 down), clamped; returns its new index."""
        new = max(0, min(len(self.steps) - 1, index + offset))
        self.steps.insert(new, self.steps.pop(index))
        return new

    @property
    def pipeline(self) -> Any:
        """The ``Pipeline`` (raises ``PipelineError`` for a bad step or bad wiring)."""
        from dspex_lab.pipeline import Pipeline

        if not self.steps:
            raise PipelineError("The pipeline has no steps yet; add one.")
        built = [s.to_step(self.namespace) for s in self.steps]
        return Pipeline(built, name=self.name or "pipeline")

    @property
    def errors(self) -> list[str]:
        """Why the draft does not build yet (empty when it does)."""
        try:
            self.pipeline  # noqa: B018
        except DspexError as exc:
            return [str(exc)]
        return []

    def to_code(self, variable: str = "pipeline") -> str:
        """Python code that rebuilds the pipeline (``Pipeline.to_code``)."""
        return self.pipeline.to_code(variable)

    def sample_inputs(self) -> dict[str, str]:
        """An empty value for every input field (a starting point for ``try_row``)."""
        return dict.fromkeys(self.pipeline.inputs, "")

    def try_row(self, row: Mapping[str, Any], **run_options: Any) -> Any:
        """Run the pipeline once on ``row`` (extra keys are ignored); returns the
        ``PipelineResult``. ``run_options`` go to ``Pipeline.run`` (``lm``,
        ``implementation="native"``, ``continue_on_error``...)."""
        pipeline = self.pipeline
        inputs = {k: row[k] for k in pipeline.inputs if k in row}
        missing = [k for k in pipeline.inputs if k not in row]
        if missing:
            raise PipelineError(f"The sample row lacks the input field(s) {', '.join(missing)}; "
                                f"give a value for each of: {', '.join(pipeline.inputs)}.")
        return pipeline.run(inputs, **run_options)
