"""The step factories: ``native``, ``dspy_step``, ``parallel``, ``when``, ``map_step``,
``sequence`` and ``as_step``. They infer fields (from function parameters, annotations and
signatures), pick default names, and reject bad arguments with a ``PipelineError`` naming the
step.

    >>> def word_count(answer: str) -> int: return len(answer.split())
    >>> native(word_count).writes
    ('word_count',)
    >>> dspy_step("question, context -> answer", module="cot").reads
    ('question', 'context')
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dspex_lab.errors import PipelineError
from dspex_lab.kinds import MODULE_KINDS
from dspex_lab.pipeline.steps import (
    DSPY_KINDS,
    DSPyStep,
    Map,
    NativeStep,
    Parallel,
    Sequence,
    Step,
    When,
    _is_template,
)
from dspex_lab.signatures import Signature, signature

__all__ = ["as_step", "dspy_step", "map_step", "native", "parallel", "sequence", "when"]


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
    params, defaults, types = _parameters(fn, name, strict=inputs is None)
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
    A custom module's declared fields carry its values as they are (lists, dicts, pydantic
    models...): ``inputs=["text"]`` is ``text: Any``; write a type to check it
    (``outputs=["words: list[str]"]``).

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
        path = {"cot": "predict", "chain_of_thought": "predict", "react": "react"}.get(module,
                                                                                      "self")
        step_state[path] = {**step_state.get(path, {}), "demos": [dict(d) for d in demos]}
    return DSPyStep(name or _default_name(step_sig), step_sig, module, tuple(tools),
                    dict(options), step_state, None, lm, timeout)


def parallel(*steps: Any, timeout: float | None = None, name: str | None = None) -> Parallel:
    """Branches that run concurrently; each branch may be a step, a list of steps or a Pipeline.

    >>> fan = parallel(dspy_step("text -> summary"), dspy_step("text -> keywords: list[str]"))
    >>> [b.writes for b in fan.branches]
    [('summary',), ('keywords',)]
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


# -- helpers -----------------------------------------------------------------------------------

def _names(value: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _is_dspy_module(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("dspy")
               for c in type(obj).__mro__)


def _function_name(fn: Any, fallback: str | None) -> str | None:
    name = getattr(fn, "__name__", None)
    if name and name.isidentifier() and name != "<lambda>":
        return name
    return fallback


def _parameters(fn: Callable[..., Any], name: str | None, strict: bool
                ) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        if not strict:
            return (), (), {}
        raise PipelineError(f"Cannot read the parameters of {fn!r}; declare inputs=[...].",
                            step=name) from None
    params, optional = [], []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if not strict:
                continue
            raise PipelineError(
                f"Native step {name or _function_name(fn, repr(fn))!r} takes *args/**kwargs, so "
                "its inputs cannot be inferred; declare inputs=[...].", step=name)
        if p.kind is p.POSITIONAL_ONLY and strict:
            raise PipelineError(
                f"Native step function {fn!r} has positional-only parameter {p.name!r}, so its "
                "field names cannot be inferred; declare inputs=[...] (passed in that order).",
                step=name)
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
        try:
            return signature(f"{', '.join(map(_any_typed, ins))} -> "
                             f"{', '.join(map(_any_typed, outs))}")
        except Exception as exc:
            raise PipelineError(f"Step {name or type(mod).__name__!r} declares bad fields: {exc}",
                                step=name) from exc
    from dspex_lab.programs import _module_signature

    sig = _module_signature(mod)
    if sig is not None and type(mod).__name__ == MODULE_KINDS["cot"] and len(sig.outputs) > 1:
        sig = Signature(sig.inputs, tuple(f for f in sig.outputs if f.name != "reasoning"),
                        sig.instructions)
    if sig is None:
        raise PipelineError(
            f"Cannot infer the fields of {type(mod).__name__}: it has no single signature. "
            "Declare them: dspy_step(module, inputs=['question'], outputs=['answer']).",
            step=name)
    return sig


def _any_typed(entry: str) -> str:
    """A declared field of a custom module: ``name`` carries any value (``name: Any``), a
    written type (``name: list[str]``) is kept."""
    return entry if ":" in entry else f"{entry.strip()}: Any"


def declared_fields(sig: Signature) -> tuple[list[str], list[str]]:
    """The ``inputs=``/``outputs=`` entries that rebuild a custom step's fields: ``name`` for
    an ``Any`` field, ``name: type`` for a declared type."""
    def entry(f: Any) -> str:
        return f.name if str(f.type) == "Any" else f"{f.name}: {f.type}"

    return [entry(f) for f in sig.inputs], [entry(f) for f in sig.outputs]
