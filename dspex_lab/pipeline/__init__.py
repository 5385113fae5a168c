"""Pipelines: multi-step LM programs that mix native Python steps and DSPy steps.

    >>> from dspex_lab.pipeline import Pipeline, dspy_step, native, parallel, when, map
    >>> def clean(question: str) -> str: return question.strip()
    >>> qa = Pipeline([
    ...     native(clean, output="question"),
    ...     dspy_step("question -> answer", module="cot"),
    ...     parallel(dspy_step("answer -> summary"), dspy_step("answer -> keywords: list[str]")),
    ... ], name="qa")
    >>> result = qa(question=" What is the capital of France? ")
    >>> result.answer, result.trace[1].route
    ('Paris', 'pool')

Modules: ``steps`` (the step values), ``factories`` (``native``, ``dspy_step``, ...),
``build`` (wiring checks), ``run`` (execution, tracing, streaming), ``result``, ``dspy_module``
(``to_dspy()``), ``io`` (save/load), ``code`` (``to_code()``), ``display`` (HTML graph and
trace), ``core`` (``Pipeline``).
"""

from dspex_lab.pipeline.core import Pipeline
from dspex_lab.pipeline.factories import (
    as_step,
    dspy_step,
    map_step,
    native,
    parallel,
    sequence,
    when,
)
from dspex_lab.pipeline.result import PipelineResult, StepResult
from dspex_lab.pipeline.steps import DSPyStep, Map, NativeStep, Parallel, Sequence, Step, When
from dspex_lab.pipeline.stream import PipelineStream

map = map_step  # the pipeline vocabulary: map(field, step, as_=...)

__all__ = [
    "DSPyStep",
    "Map",
    "NativeStep",
    "Parallel",
    "Pipeline",
    "PipelineResult",
    "PipelineStream",
    "Sequence",
    "Step",
    "StepResult",
    "When",
    "as_step",
    "dspy_step",
    "map",
    "map_step",
    "native",
    "parallel",
    "sequence",
    "when",
]
