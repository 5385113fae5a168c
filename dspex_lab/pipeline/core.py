"""``Pipeline``: multi-step LM programs mixing native Python steps and DSPy steps.

A pipeline is a plain, immutable model: a list of steps (``native``, ``dspy_step``,
``parallel``, ``when``, ``map``) that read and write fields of one state. Wiring is checked when
the pipeline is built; ``then``/``parallel``/``when``/``map`` return new pipelines.

    >>> from dspex_lab.pipeline import Pipeline, dspy_step, native
    >>> def clean(question: str) -> str: return question.strip()
    >>> qa = Pipeline([native(clean, output="question"),
    ...                dspy_step("question -> answer", module="cot")], name="qa")
    >>> qa.signature
    signature('question: str -> answer')
    >>> qa(question=" What is the capital of France? ").answer
    'Paris'

Where things run: native steps in the kernel (no IPC), DSPy steps in a worker of the
``general`` pool through the router (or a cached answer). Over a DataFrame,
``dspex_lab.batch.run(pipeline, df)`` sends the whole pipeline to the workers, one row per
task, so native steps then run in the workers too (notebook functions travel by cloudpickle).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dspex_lab.errors import PipelineError
from dspex_lab.pipeline.build import Plan, build
from dspex_lab.pipeline.factories import as_step, map_step, parallel, when
from dspex_lab.pipeline.kernel import KernelDSPy
from dspex_lab.pipeline.result import PipelineResult, StepResult
from dspex_lab.pipeline.run import Runner
from dspex_lab.pipeline.steps import DSPyStep, Sequence, Step, walk
from dspex_lab.pipeline.stream import PipelineStream
from dspex_lab.signatures import Signature

__all__ = ["Pipeline"]


class Pipeline:
    """A checked, runnable list of steps. See the module docstring.

    ``inputs`` (optional) declares the input fields; without it they are inferred as the fields
    read before any step writes them. ``outputs`` defaults to every field a step writes that is
    not an input. ``continue_on_error`` is the default for runs.
    """

    def __init__(self, steps: Iterable[Any] = (), name: str | None = None, *,
                 inputs: Iterable[str] | None = None, outputs: Iterable[str] | None = None,
                 description: str | None = None, continue_on_error: bool = False) -> None:
        self.name = name or "pipeline"
        self.description = description
        self.continue_on_error = continue_on_error
        self._declared = (None if inputs is None else tuple(inputs),
                          None if outputs is None else tuple(outputs))
        self._plan = build(steps, inputs=self._declared[0], outputs=self._declared[1])
        self._memo: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- the model -----------------------------------------------------------------------------
    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def steps(self) -> tuple[Step, ...]:
        """The top-level steps (named and checked)."""
        return self._plan.steps

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._plan.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self._plan.outputs

    @property
    def signature(self) -> Signature:
        """The overall ``inputs -> outputs`` signature (types from the steps)."""
        return self._plan.signature(self.description)

    def step(self, name: str) -> Step:
        """The step called ``name`` (at any depth)."""
        try:
            return self._plan.by_name[name]
        except KeyError:
            raise PipelineError(f"Pipeline {self.name!r} has no step {name!r}; steps: "
                                f"{', '.join(self._plan.by_name)}.", step=name) from None

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getstate__(self) -> dict[str, Any]:  # no lock, no built modules
        return {k: v for k, v in self.__dict__.items() if k not in ("_memo", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._memo = {}
        self._lock = threading.Lock()

    def __dspex_steps__(self) -> Step:
        """This pipeline as one step, to nest it inside another pipeline."""
        return Sequence(self.name if self.name.isidentifier() else "", self.steps)

    def _evolve(self, steps: Iterable[Any], **changes: Any) -> Pipeline:
        kw = {"name": self.name, "inputs": self._declared[0], "outputs": self._declared[1],
              "description": self.description, "continue_on_error": self.continue_on_error}
        kw.update(changes)
        return Pipeline(steps, **kw)

    # -- builder -------------------------------------------------------------------------------
    def then(self, *steps: Any) -> Pipeline:
        """A new pipeline with ``steps`` appended (strings, functions, modules or steps).

        >>> Pipeline().then("question -> answer").then(native(len, inputs=["answer"], output="n"))
        """
        return self._evolve((*self.steps, *steps))

    def parallel(self, *steps: Any, timeout: float | None = None, name: str | None = None
                 ) -> Pipeline:
        """A new pipeline ending with these branches run concurrently."""
        return self.then(parallel(*steps, timeout=timeout, name=name))

    def when(self, condition: str | Callable[..., Any], then: Any, otherwise: Any = None, *,
             name: str | None = None) -> Pipeline:
        """A new pipeline ending with a conditional step."""
        return self.then(when(condition, then, otherwise, name=name))

    def map(self, field: str, step: Any, as_: str | None = None, *, name: str | None = None,
            max_concurrency: int | None = None) -> Pipeline:
        """A new pipeline ending with ``step`` run over each item of the list ``field``."""
        return self.then(map_step(field, step, as_, name=name, max_concurrency=max_concurrency))

    def replace(self, name: str, step: Any) -> Pipeline:
        """A new pipeline with the step called ``name`` replaced by ``step``."""
        self.step(name)
        new = as_step(step)
        new = new if new.name else new.renamed(name)
        return self._evolve(_replace(self.steps, {name: new}))

    def without(self, name: str) -> Pipeline:
        """A new pipeline without the top-level step ``name``."""
        self.step(name)
        return self._evolve(tuple(s for s in self.steps if s.name != name))

    # -- running -------------------------------------------------------------------------------
    def __call__(self, *, lm: Any = None, continue_on_error: bool | None = None,
                 on_step: Callable[[StepResult], Any] | None = None, cache: bool = True,
                 implementation: str | None = None, **inputs: Any) -> PipelineResult:
        """Run on keyword inputs; see ``run`` (whose option names are not field names here:
        pass such fields with ``run({"lm": ...})``)."""
        return self.run(inputs, lm=lm, continue_on_error=continue_on_error, on_step=on_step,
                        cache=cache, implementation=implementation)

    def run(self, inputs: Mapping[str, Any] | None = None, /, *, lm: Any = None,
            continue_on_error: bool | None = None,
            on_step: Callable[[StepResult], Any] | None = None, cache: bool = True,
            implementation: str | None = None, telemetry: bool = True,
            timeout: float | None = None, **fields: Any) -> PipelineResult:
        """Run once and return a ``PipelineResult`` (final state + per-step trace).

        ``lm`` is the LM for DSPy steps that name none; ``on_step(step_result)`` is called as
        each step finishes; with ``continue_on_error=True`` failures are recorded and steps
        whose inputs are missing are skipped, else the first failure raises ``PipelineError``
        (its ``.result`` holds the partial result). ``implementation="native"`` runs DSPy
        steps inline in the kernel instead of a worker. ``telemetry=False`` skips the
        ``pipeline.step``/``pipeline.run`` events (for tight loops of native steps).
        ``timeout`` (seconds) bounds the whole run: a step still running then fails with
        ``StepTimeout`` (a stuck native step is abandoned in its thread).
        """
        runner = self._runner(lm, continue_on_error, on_step, cache, implementation, telemetry,
                              timeout)
        return runner.run({**(inputs or {}), **fields})

    def stream(self, inputs: Mapping[str, Any] | None = None, /, *, lm: Any = None,
               continue_on_error: bool | None = None,
               on_step: Callable[[StepResult], Any] | None = None, cache: bool = True,
               implementation: str | None = None, telemetry: bool = True,
               timeout: float | None = None, **fields: Any) -> PipelineStream:
        """Yield ``StepResult``s as steps finish; ``.result`` holds the final result after.

        >>> for step in qa.stream(question="What is 2 + 3?"):
        ...     print(step.name, step.route, step.outputs)
        """
        runner = self._runner(lm, continue_on_error, on_step, cache, implementation, telemetry,
                              timeout)
        return PipelineStream(runner, {**(inputs or {}), **fields})

    def _runner(self, lm: Any, continue_on_error: bool | None, on_step: Any, cache: bool,
                implementation: str | None, telemetry: bool = True,
                timeout: float | None = None) -> Runner:
        keep_going = self.continue_on_error if continue_on_error is None else continue_on_error
        call = KernelDSPy(lm, cache=cache, implementation=implementation)
        return Runner(self._plan, self.name, call, keep_going, on_step, emit=telemetry,
                      timeout=timeout)

    # -- DSPy ----------------------------------------------------------------------------------
    def to_dspy(self, *, full_state: bool = False, timeout: float | None = None) -> Any:
        """A ``dspy.Module`` that runs this pipeline in-process (for optimizers, Evaluate and
        batch workers). DSPy steps are real ``Predict``/``ChainOfThought``/``ReAct``
        submodules, so ``named_predictors()`` sees them. ``forward`` returns the outputs (every
        field with ``full_state=True``); ``timeout`` bounds each call (see ``Runner``)."""
        from dspex_lab.pipeline.dspy_module import PipelineModule

        return PipelineModule(self, full_state=full_state, timeout=timeout)

    def with_dspy_state(self, source: Any) -> Pipeline:
        """A new pipeline carrying the optimized demos/instructions of ``source``: a module
        from ``to_dspy()`` (compiled by an optimizer), its ``dump_state()`` dict, or what
        ``dspex_lab.optimize(pipeline, ...)`` returned."""
        from dspex_lab.pipeline.dspy_module import states_from

        states = states_from(self, source)
        changed = {name: self.step(name).with_state(st) for name, st in states.items()}
        return self._evolve(_replace(self.steps, changed))

    @classmethod
    def from_dspy_state(cls, pipeline: Pipeline, source: Any) -> Pipeline:
        """``pipeline`` with the optimized state of ``source`` (see ``with_dspy_state``)."""
        return pipeline.with_dspy_state(source)

    def __dspex_program__(self) -> Any:
        """The ``Program`` batch runs use: the whole pipeline as one DSPy module per row."""
        with self._lock:
            prog = self._memo.get("program")
            if prog is None:
                from dspex_lab.programs import Program

                prog = Program("module", self.signature, module=self.to_dspy())
                self._memo["program"] = prog
        return prog

    @property
    def dspy_steps(self) -> list[DSPyStep]:
        return [s for s in walk(self.steps) if isinstance(s, DSPyStep)]

    # -- files and code ------------------------------------------------------------------------
    def to_dict(self, *, allow_pickle: bool = False) -> dict[str, Any]:
        """The readable, JSON-ready form (``save`` writes it)."""
        from dspex_lab.pipeline.io import pipeline_to_dict

        return pipeline_to_dict(self, allow_pickle=allow_pickle)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, allow_pickle: bool = False) -> Pipeline:
        """A pipeline from ``to_dict`` data (pickled steps only with ``allow_pickle``)."""
        from dspex_lab.pipeline.io import pipeline_from_dict

        return pipeline_from_dict(data, allow_pickle=allow_pickle)

    def save(self, path: str | Path, *, allow_pickle: bool = False) -> Path:
        """Write JSON (or YAML for ``.yaml``/``.yml``). Native functions are saved by import
        path; lambdas and closures need ``allow_pickle=True`` (embeds a cloudpickle blob)."""
        from dspex_lab.pipeline.io import save

        return save(self, path, allow_pickle=allow_pickle)

    @classmethod
    def load(cls, path: str | Path, *, allow_pickle: bool = False) -> Pipeline:
        """Read a pipeline written by ``save`` (pickled functions need ``allow_pickle=True``)."""
        from dspex_lab.pipeline.io import load

        return load(path, allow_pickle=allow_pickle)

    def to_code(self, variable: str = "pipeline") -> str:
        """Python code that rebuilds this pipeline."""
        from dspex_lab.pipeline.code import to_code

        return to_code(self, variable)

    # -- display -------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from dspex_lab.pipeline.display import pipeline_html

        return pipeline_html(self)

    def _repr_markdown_(self) -> str:
        from dspex_lab.pipeline.display import pipeline_markdown

        return pipeline_markdown(self)

    def __repr__(self) -> str:
        from dspex_lab.pipeline.display import pipeline_text

        return pipeline_text(self)


def _replace(steps: tuple[Step, ...], new: Mapping[str, Step]) -> tuple[Step, ...]:
    """``steps`` with the steps named in ``new`` swapped, at any depth."""
    out = []
    for s in steps:
        if s.name in new:
            out.append(new[s.name])
        elif s.children:
            out.append(s.with_children(_replace(s.children, new)))
        else:
            out.append(s)
    return tuple(out)
