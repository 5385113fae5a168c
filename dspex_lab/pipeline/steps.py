"""Pipeline steps: plain, immutable values that say what runs and which fields it reads/writes.

Two leaf kinds run code: ``NativeStep`` (a Python function or a ``Template``, run in the kernel
with no IPC) and ``DSPyStep`` (a signature run by ``dspy.Predict``/``ChainOfThought``/``ReAct``,
or any ``dspy.Module``, routed to a worker). Four compound kinds arrange other steps:
``Sequence``, ``Parallel``, ``When`` and ``Map``. Steps hold no run state; wiring is checked in
``build.py``, running lives in ``run.py``.

    >>> s = native(lambda question: question.strip(), outputs=["question"], name="clean")
    >>> s.reads, s.writes
    (('question',), ('question',))
    >>> dspy_step("question, context -> answer", module="cot").name
    'answer'
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dspex_lab.errors import PipelineError
from dspex_lab.signatures import Signature, signature

__all__ = [
    "DSPY_KINDS", "DSPyStep", "Map", "NativeStep", "Parallel", "Sequence", "Step", "When",
    "as_step", "dspy_step", "map_step", "native", "parallel", "sequence", "walk", "when",
    "written",
]

DSPY_KINDS = {"predict": "predict", "cot": "chain_of_thought", "chain_of_thought":
              "chain_of_thought", "react": "react", "module": "predict"}
"""DSPy step module kinds -> the routed operation that runs them."""


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

    With one output the return value is that field (a dict holding exactly that key is
    unwrapped); with several, ``fn`` returns a dict with every output; with none, the return
    value is ignored (validation steps raise instead).
    """

    fn: Callable[..., Any] = None  # type: ignore[assignment]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    types: tuple[tuple[str, str], ...] = ()
    kind: ClassVar[str] = "native"

    @property
    def reads(self) -> tuple[str, ...]:
        return self.inputs

    @property
    def writes(self) -> tuple[str, ...]:
        return self.outputs

    @property
    def is_template(self) -> bool:
        return _is_template(self.fn)

    def call(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Run on ``state`` and return the written fields."""
        values = {k: state[k] for k in self.inputs if k in state}
        result = self.fn.render(values) if self.is_template else self.fn(**values)
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


# -- factories ---------------------------------------------------------------------------------

def native(fn: Callable[..., Any], inputs: Iterable[str] | None = None,
           outputs: Iterable[str] | str | None = None, *, output: str | None = None,
           name: str | None = None, optional: Iterable[str] | None = None) -> NativeStep:
    """A native step: ``fn`` runs in the kernel on the fields it names.

    ``inputs`` default to ``fn``'s parameter names (parameters with defaults are
    ``optional``: passed when the field exists, never required);
    ``outputs`` (or ``output``) default to the keys of a ``TypedDict`` return annotation, else
    to the function's name. A ``Template`` reads its variables and writes ``output`` (default
    ``prompt``).

    >>> def word_count(answer: str) -> int: return len(answer.split())
    >>> native(word_count).writes
    ('word_count',)
    >>> native(lambda a, b: {"s": a + b, "d": a - b}, outputs=["s", "d"], name="arith").reads
    ('a', 'b')
    """
    if not callable(fn):
        raise PipelineError(f"A native step needs a function or template, got {fn!r}.", step=name)
    if output is not None and outputs is not None:
        raise PipelineError("Give either output='x' or outputs=[...], not both.", step=name)
    outs = (output,) if output is not None else _names(outputs)
    if _is_template(fn):
        ins = _names(inputs) if inputs is not None else tuple(fn.variables)
        outs = outs if outs is not None else ("prompt",)
        types = tuple((o, "str") for o in outs[:1])
        return NativeStep(name or (outs[0] if outs else "template"), fn, ins, outs, (), types)
    params, defaults, types = _parameters(fn, name)
    ins = _names(inputs) if inputs is not None else params
    if optional is None:
        optional = defaults if inputs is None else ()
    optional = tuple(o for o in optional if o in ins)
    if outs is None:
        outs = _returned_keys(fn)
    if outs is None:
        if _function_name(fn, None) is None:
            raise PipelineError(f"Native step {name or fn!r} is a lambda or has no usable name, "
                                "so its output field cannot be inferred; declare output='x'.",
                                step=name)
        outs = (_function_name(fn, None),)
    types = {**types, **_return_types(fn, outs)}
    step_name = name or _function_name(fn, None) or (outs[0] if outs else "native")
    return NativeStep(step_name, fn, ins, tuple(outs), optional, tuple(types.items()))


def dspy_step(sig: Any, module: str = "predict", *, name: str | None = None,
              tools: Iterable[Callable[..., Any]] = (), inputs: Iterable[str] | None = None,
              outputs: Iterable[str] | None = None, instructions: str | None = None,
              demos: Iterable[Mapping[str, Any]] | None = None, state: Mapping | None = None,
              lm: Any = None, timeout: float | None = None, **options: Any) -> DSPyStep:
    """A DSPy step: a signature run by ``module`` (``predict``, ``cot``, ``react`` with
    ``tools``), or a ready ``dspy.Module`` (inputs/outputs declared or read from its signature).

    ``demos`` seeds few-shot examples (dicts of field values) for a single-predictor module.

    >>> dspy_step("question, context -> answer", module="cot", name="answer").reads
    ('question', 'context')
    """
    if _is_dspy_module(sig):
        step_sig = _custom_signature(sig, inputs, outputs, name)
        step_name = name or _default_name(step_sig)
        return DSPyStep(step_name, step_sig, "module", (), {}, dict(state or {}), sig, lm, timeout)
    if module not in DSPY_KINDS or module == "module":
        raise PipelineError(f"Unknown DSPy module {module!r} for a step; use predict, cot or react "
                            "(or pass a dspy.Module instance).", step=name)
    try:
        step_sig = signature(sig, instructions)
    except Exception as exc:
        raise PipelineError(f"Step {name or sig!r} has a bad signature: {exc}", step=name) from exc
    if module == "react" and not tools:
        raise PipelineError("A react step needs tools=[...] (plain Python functions).", step=name)
    step_state = dict(state or {})
    if demos is not None:
        path = "predict" if module in ("cot", "chain_of_thought") else "self"
        step_state[path] = {**step_state.get(path, {}), "demos": [dict(d) for d in demos]}
    return DSPyStep(name or _default_name(step_sig), step_sig, module, tuple(tools),
                    dict(options), step_state, None, lm, timeout)


def parallel(*steps: Any, timeout: float | None = None, name: str | None = None) -> Parallel:
    """Branches that run concurrently; each branch may be a step, a list of steps or a Pipeline.

    >>> parallel(dspy_step("text -> summary"), dspy_step("text -> keywords: list[str]")).writes
    ()
    """
    if not steps:
        raise PipelineError("parallel() needs at least one branch.", step=name)
    if timeout is not None and timeout <= 0:
        raise PipelineError(f"parallel timeout must be positive, got {timeout!r}.", step=name)
    return Parallel(name or "", tuple(as_step(s) for s in steps), timeout)


def when(condition: str | Callable[[Mapping[str, Any]], Any], then: Any, otherwise: Any = None,
         *, name: str | None = None) -> When:
    """Run ``then`` when ``condition`` (a field name or a callable on the state) holds.

    >>> when("needs_review", dspy_step("answer -> review")).reads
    ('needs_review',)
    """
    if not (isinstance(condition, str) or callable(condition)):
        raise PipelineError(f"A when() condition is a field name or a callable on the state, "
                            f"got {condition!r}.", step=name)
    other = None if otherwise is None else as_step(otherwise)
    return When(name or "", condition, as_step(then), other)


def map_step(field_name: str, step: Any, as_: str | None = None, *, name: str | None = None,
             max_concurrency: int | None = None) -> Map:
    """Run ``step`` for each item of the list field ``field_name`` (item named ``as_``).

    ``as_`` defaults to the singular of the field (``questions`` -> ``question``), else
    ``item``. Exported as ``map`` too.

    >>> map_step("questions", dspy_step("question -> answer")).as_
    'question'
    """
    if not isinstance(field_name, str) or not field_name:
        raise PipelineError(f"map() needs the name of a list field, got {field_name!r}.", step=name)
    item = as_ or (field_name[:-1] if field_name.endswith("s") and len(field_name) > 1
                   else "item")
    return Map(name or "", field_name, as_step(step), item, max_concurrency)


def sequence(*steps: Any, name: str | None = None) -> Sequence:
    """Steps run in order, as one step (to nest inside ``parallel``/``when``/``map``)."""
    return Sequence(name or "", tuple(as_step(s) for s in steps))


def as_step(obj: Any) -> Step:
    """Coerce ``obj`` to a step: a Step, a Pipeline, a list (a sequence), a signature string
    (a predict step), a ``dspy.Module``, a ``Template`` or a function (a native step)."""
    if isinstance(obj, Step):
        return obj
    if hasattr(obj, "__dspex_steps__"):
        return obj.__dspex_steps__()
    if isinstance(obj, list | tuple):
        return Sequence("", tuple(as_step(s) for s in obj))
    if isinstance(obj, str | Signature):
        return dspy_step(obj)
    if _is_dspy_module(obj):
        return dspy_step(obj)
    if callable(obj):
        return native(obj)
    raise PipelineError(
        f"Cannot use a {type(obj).__name__} as a pipeline step; pass a signature string, a "
        "dspy.Module, a Python function, a template, or a step from dspy_step/native/parallel/"
        "when/map.")


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

def _names(value: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _is_template(fn: Any) -> bool:
    return type(fn).__name__ == "Template" and hasattr(fn, "variables") and hasattr(fn, "render")


def _is_dspy_module(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("dspy")
               for c in type(obj).__mro__)


def _function_name(fn: Any, fallback: str | None) -> str | None:
    name = getattr(fn, "__name__", None)
    if name and name.isidentifier() and name != "<lambda>":
        return name
    return fallback


def _parameters(fn: Callable[..., Any], name: str | None
                ) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise PipelineError(f"Cannot read the parameters of {fn!r}; declare inputs=[...].",
                            step=name) from None
    params, optional = [], []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PipelineError(
                f"Native step {name or _function_name(fn, repr(fn))!r} takes *args/**kwargs, so "
                "its inputs cannot be inferred; declare inputs=[...].", step=name)
        if p.kind is p.POSITIONAL_ONLY:
            raise PipelineError(f"Native step function {fn!r} has positional-only parameter "
                                f"{p.name!r}; fields are passed by name.", step=name)
        params.append(p.name)
        if p.default is not p.empty:
            optional.append(p.name)
    return tuple(params), tuple(optional), _annotation_types(fn, params)


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def _type_text(annotation: Any) -> str | None:
    from dspex_lab.signatures import TypeSpec

    try:
        return str(TypeSpec.of(annotation))
    except Exception:
        return None


def _annotation_types(fn: Any, params: list[str]) -> dict[str, str]:
    hints = _hints(fn)
    out = {}
    for p in params:
        if p in hints and (text := _type_text(hints[p])):
            out[p] = text
    return out


def _returned_keys(fn: Any) -> tuple[str, ...] | None:
    ret = _hints(fn).get("return")
    if isinstance(ret, type) and typing.is_typeddict(ret):
        return tuple(ret.__annotations__)
    return None


def _return_types(fn: Any, outputs: tuple[str, ...]) -> dict[str, str]:
    ret = _hints(fn).get("return")
    if ret is None:
        return {}
    if isinstance(ret, type) and typing.is_typeddict(ret):
        return {k: t for k, v in typing.get_type_hints(ret).items()
                if k in outputs and (t := _type_text(v))}
    if len(outputs) == 1 and (text := _type_text(ret)):
        return {outputs[0]: text}
    return {}


def _default_name(sig: Signature) -> str:
    return sig.output_names[0] if len(sig.output_names) == 1 else "_".join(sig.output_names[:2])


def _custom_signature(mod: Any, inputs: Iterable[str] | None, outputs: Iterable[str] | None,
                      name: str | None) -> Signature:
    if inputs is not None and outputs is not None:
        ins, outs = tuple(inputs), tuple(outputs)
        if not ins or not outs:
            raise PipelineError("A custom dspy.Module step needs at least one input and one "
                                "output field.", step=name)
        return signature(f"{', '.join(ins)} -> {', '.join(outs)}")
    from dspex_lab.programs import _module_signature

    sig = _module_signature(mod)
    if sig is None:
        raise PipelineError(
            f"Cannot infer the fields of {type(mod).__name__}: it has no single signature. "
            "Declare them: dspy_step(module, inputs=['question'], outputs=['answer']).",
            step=name)
    return sig
