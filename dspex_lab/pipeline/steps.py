"""Pipeline steps: plain, immutable values that say what runs and which fields it reads/writes.

Two leaf kinds run code: ``NativeStep`` (a Python function or a ``Template``, run in the kernel
with no IPC) and ``DSPyStep`` (a signature run by ``dspy.Predict``/``ChainOfThought``/``ReAct``,
or any ``dspy.Module``, routed to a worker). Four compound kinds arrange other steps:
``Sequence``, ``Parallel``, ``When`` and ``Map``. Steps hold no run state. Build them with the
factories in ``factories.py``; wiring is checked in ``build.py``, running lives in ``run.py``.

    >>> s = NativeStep("clean", lambda question: question.strip(), inputs=("question",),
    ...                outputs=("question",))
    >>> s.reads, s.writes, s.call({"question": " hi "})
    (('question',), ('question',), {'question': 'hi'})
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dspex_lab.errors import PipelineError
from dspex_lab.kinds import OPERATIONS
from dspex_lab.signatures import Signature

__all__ = ["DSPY_KINDS", "DSPyStep", "Map", "NativeStep", "Parallel", "Sequence", "Step", "When",
           "walk", "written"]

DSPY_KINDS = OPERATIONS
"""DSPy step module kinds -> the routed operation that runs them (``kinds.OPERATIONS``)."""


@dataclass(frozen=True, eq=False)
class Step:
    """Base of every step: a unique ``name``; ``reads``/``writes`` are field names."""

    name: str
    kind: ClassVar[str] = "step"

    @property
    def reads(self) -> tuple[str, ...]:
        return ()

    @property
    def writes(self) -> tuple[str, ...]:
        return ()

    @property
    def children(self) -> tuple[Step, ...]:
        return ()

    def renamed(self, name: str) -> Step:
        """A copy with another name."""
        return dataclasses.replace(self, name=name)

    def with_children(self, children: tuple[Step, ...]) -> Step:
        """A copy with other children (same order as ``children``)."""
        return self


@dataclass(frozen=True, eq=False)
class NativeStep(Step):
    """A Python function (or ``Template``) run in the kernel: ``fn(**inputs)`` -> outputs.

    A function whose parameters are positional-only (``len``, many builtins) gets the inputs
    positionally, in ``inputs`` order. With one output the return value is that field (a dict
    holding exactly that key is unwrapped); with several, ``fn`` returns a dict with every
    output; with none, the return value is ignored (validation steps raise instead).
    """

    fn: Callable[..., Any] = None  # type: ignore[assignment]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    types: tuple[tuple[str, str], ...] = ()
    is_template: bool = field(default=False, init=False, repr=False)
    positional: bool = field(default=False, init=False, repr=False)
    kind: ClassVar[str] = "native"

    @property
    def reads(self) -> tuple[str, ...]:
        return self.inputs

    @property
    def writes(self) -> tuple[str, ...]:
        return self.outputs

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_template", _is_template(self.fn))
        object.__setattr__(self, "positional", not self.is_template and _positional(self.fn))

    def call(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Run on ``state`` and return the written fields."""
        if self.positional:
            result = self.fn(*[state[k] for k in self.inputs if k in state])
        else:
            values = {k: state[k] for k in self.inputs if k in state}
            result = self.fn.render(values) if self.is_template else self.fn(**values)
        outs = self.outputs
        if len(outs) == 1 and not isinstance(result, Mapping):
            return {outs[0]: result}
        return self.split(result)

    def split(self, result: Any) -> dict[str, Any]:
        """Map the function's return value to the output fields."""
        outs = self.outputs
        if len(outs) == 1:
            if isinstance(result, Mapping) and len(result) == 1 and outs[0] in result:
                return {outs[0]: result[outs[0]]}
            return {outs[0]: result}
        if not outs:
            return {}
        if not isinstance(result, Mapping):
            raise PipelineError(
                f"Native step {self.name!r} declares outputs {list(outs)} and so must return a "
                f"dict with those keys, but it returned a {type(result).__name__}.", step=self.name)
        missing = [o for o in outs if o not in result]
        if missing:
            raise PipelineError(
                f"Native step {self.name!r} returned a dict without {missing} (it has: "
                f"{', '.join(map(str, result)) or 'no keys'}); return every declared output.",
                step=self.name)
        return {o: result[o] for o in outs}


@dataclass(frozen=True, eq=False)
class DSPyStep(Step):
    """A DSPy module over ``signature``: ``module`` is predict, cot, react or module (custom).

    ``state`` holds optimized predictor state by predictor path (``{"predict": {"demos":
    [...], "instructions": "..."}}``); ``custom`` is the ``dspy.Module`` of a custom step.
    """

    signature: Signature = None  # type: ignore[assignment]
    module: str = "predict"
    tools: tuple[Callable[..., Any], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    custom: Any = None
    lm: Any = None
    timeout: float | None = None
    _memo: dict = field(default_factory=dict, repr=False, compare=False)
    kind: ClassVar[str] = "dspy"

    @property
    def reads(self) -> tuple[str, ...]:
        return self.signature.input_names

    @property
    def writes(self) -> tuple[str, ...]:
        return self.signature.output_names

    @property
    def operation(self) -> str:
        """The routed operation (``predict``, ``chain_of_thought`` or ``react``)."""
        return DSPY_KINDS[self.module]

    def renamed(self, name: str) -> Step:
        """A copy of the step under another name."""
        return dataclasses.replace(self, name=name, _memo={})

    def __getstate__(self) -> dict[str, Any]:  # built modules stay behind
        return {**self.__dict__, "_memo": {}}

    def with_state(self, state: Mapping[str, Any]) -> DSPyStep:
        """A copy carrying optimized predictor state (demos, instructions)."""
        return dataclasses.replace(self, state=dict(state), _memo={})

    def build_module(self) -> Any:
        """A fresh ``dspy.Module`` for this step, with its optimized state applied."""
        from dspex_lab.pipeline.dspy_module import build_step_module

        return build_step_module(self)

    def program(self) -> Any:
        """The ``dspex_lab.programs.Program`` the router runs (built once per step)."""
        prog = self._memo.get("program")
        if prog is None:
            from dspex_lab.programs import Program

            if self.custom is None and not self.state:
                kind = "cot" if self.module == "chain_of_thought" else self.module
                prog = Program(kind, self.signature, tuple(self.tools), None, dict(self.options))
            else:
                prog = Program("module", self.signature, (), self.build_module(), {})
            self._memo["program"] = prog
        return prog

    @property
    def demo_count(self) -> int:
        return sum(len(s.get("demos", ())) for s in self.state.values())


@dataclass(frozen=True, eq=False)
class Sequence(Step):
    """Steps run one after the other; each sees the fields written before it."""

    steps: tuple[Step, ...] = ()
    kind: ClassVar[str] = "sequence"

    @property
    def children(self) -> tuple[Step, ...]:
        return self.steps

    def with_children(self, children: tuple[Step, ...]) -> Step:
        """A copy with other child steps."""
        return dataclasses.replace(self, steps=tuple(children))


@dataclass(frozen=True, eq=False)
class Parallel(Step):
    """Branches run concurrently on the same state; results merge in branch order.

    ``timeout`` (seconds) applies to each branch. Two branches may not write the same field.
    """

    branches: tuple[Step, ...] = ()
    timeout: float | None = None
    kind: ClassVar[str] = "parallel"

    @property
    def children(self) -> tuple[Step, ...]:
        return self.branches

    def with_children(self, children: tuple[Step, ...]) -> Step:
        """A copy with other branches."""
        return dataclasses.replace(self, branches=tuple(children))


@dataclass(frozen=True, eq=False)
class When(Step):
    """``then`` if ``condition`` holds, else ``otherwise`` (or nothing).

    ``condition`` is a field name (its value's truth) or a callable on the state. Fields that
    the branch taken does not write are set to None, so later steps can always read them.
    """

    condition: str | Callable[[Mapping[str, Any]], Any] = ""
    then: Step = None  # type: ignore[assignment]
    otherwise: Step | None = None
    kind: ClassVar[str] = "when"

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.condition,) if isinstance(self.condition, str) else ()

    @property
    def children(self) -> tuple[Step, ...]:
        return (self.then,) if self.otherwise is None else (self.then, self.otherwise)

    def with_children(self, children: tuple[Step, ...]) -> Step:
        """A copy with other branches (then, otherwise)."""
        otherwise = children[1] if len(children) > 1 else None
        return dataclasses.replace(self, then=children[0], otherwise=otherwise)

    def test(self, state: Mapping[str, Any]) -> bool:
        """Evaluate the condition on ``state``."""
        if isinstance(self.condition, str):
            return bool(state.get(self.condition))
        return bool(self.condition(_ReadOnly(state)))


@dataclass(frozen=True, eq=False)
class Map(Step):
    """Run ``step`` once per item of the list field ``field`` (the item is named ``as_``).

    Every field the inner step writes becomes a list, one value per item, in item order.
    """

    field: str = ""
    step: Step = None  # type: ignore[assignment]
    as_: str = "item"
    max_concurrency: int | None = None
    kind: ClassVar[str] = "map"

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.field,)

    @property
    def children(self) -> tuple[Step, ...]:
        return (self.step,)

    def with_children(self, children: tuple[Step, ...]) -> Step:
        """A copy with another step to map."""
        return dataclasses.replace(self, step=children[0])


class _ReadOnly(Mapping):
    """The state as a read-only mapping that also reads as attributes (``s.score``)."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        self._d = d

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self):
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(f"The pipeline state has no field {name!r}.") from None


def written(step: Step) -> tuple[str, ...]:
    """Every field ``step`` (or any step inside it) writes, in order."""
    out = dict.fromkeys(step.writes)
    for child in step.children:
        out.update(dict.fromkeys(written(child)))
    return tuple(out)


def walk(steps: Iterable[Step]) -> Iterable[Step]:
    """Every step in ``steps`` and below, parents before children."""
    for s in steps:
        yield s
        yield from walk(s.children)


# -- helpers -----------------------------------------------------------------------------------

def _is_template(fn: Any) -> bool:
    return type(fn).__name__ == "Template" and hasattr(fn, "variables") and hasattr(fn, "render")


def _positional(fn: Any) -> bool:
    """True when ``fn`` takes a positional-only parameter (so fields go in by position)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.POSITIONAL_ONLY for p in params)
