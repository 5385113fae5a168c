"""``Pipeline.to_code()``: Python source that rebuilds a pipeline (the builder widget exports it).

Functions from importable modules get an import line; functions defined in the notebook are
used by name (the notebook defines them); a lambda or closure cannot be written as code, so it
becomes a name listed in a ``# TODO`` comment at the top.

    >>> print(qa.to_code())
    from dspex_lab.pipeline import Pipeline, dspy_step, native
    from mytools import clean
    <BLANKLINE>
    pipeline = Pipeline(
        [
            native(clean, inputs=['question'], outputs=['question'], name='clean'),
            dspy_step('question -> answer', 'cot', name='answer'),
        ],
        name='qa',
    )
"""

from __future__ import annotations

import pprint
from typing import TYPE_CHECKING, Any

from dspex_lab.pipeline.factories import declared_fields
from dspex_lab.pipeline.steps import DSPyStep, Map, NativeStep, Parallel, Sequence, Step, When

if TYPE_CHECKING:
    from dspex_lab.pipeline.core import Pipeline

__all__ = ["to_code"]

_IND = "    "


class _Writer:
    def __init__(self) -> None:
        self.names: set[str] = {"Pipeline"}
        self.imports: dict[str, set[str]] = {}
        self.todo: list[str] = []

    def ref(self, obj: Any, step: str) -> str:
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None) or ""
        if not module or not qualname or "<" in qualname:
            name = f"{step}_fn"
            self.todo.append(f"{name} (a lambda or nested function of step {step!r})")
            return name
        top = qualname.split(".")[0]
        if module != "__main__":
            self.imports.setdefault(module, set()).add(top)
        return qualname

    def step(self, s: Step, depth: int) -> str:
        pad = _IND * (depth + 1)
        if isinstance(s, NativeStep):
            return self.native(s)
        if isinstance(s, DSPyStep):
            return self.dspy(s, depth)
        kids_pad = _IND * (depth + 2)
        if isinstance(s, Sequence):
            self.names.add("sequence")
            body = "".join(f"{kids_pad}{self.step(c, depth + 1)},\n" for c in s.steps)
            return f"sequence(\n{body}{kids_pad}name={s.name!r},\n{pad})"
        if isinstance(s, Parallel):
            self.names.add("parallel")
            body = "".join(f"{kids_pad}{self.step(c, depth + 1)},\n" for c in s.branches)
            extra = "" if s.timeout is None else f"timeout={s.timeout!r}, "
            return f"parallel(\n{body}{kids_pad}{extra}name={s.name!r},\n{pad})"
        if isinstance(s, When):
            self.names.add("when")
            cond = repr(s.condition) if isinstance(s.condition, str) else \
                self.ref(s.condition, s.name)
            args = [cond, self.step(s.then, depth + 1)]
            if s.otherwise is not None:
                args.append(self.step(s.otherwise, depth + 1))
            body = "".join(f"{kids_pad}{a},\n" for a in args)
            return f"when(\n{body}{kids_pad}name={s.name!r},\n{pad})"
        if isinstance(s, Map):
            self.names.add("map_step")
            extra = "" if s.max_concurrency is None else f", max_concurrency={s.max_concurrency}"
            inner = self.step(s.step, depth + 1)
            return (f"map_step(\n{kids_pad}{s.field!r},\n{kids_pad}{inner},\n"
                    f"{kids_pad}as_={s.as_!r}, name={s.name!r}{extra},\n{pad})")
        raise TypeError(f"Cannot write a {type(s).__name__} as code.")

    def native(self, s: NativeStep) -> str:
        self.names.add("native")
        if s.is_template:
            self.imports.setdefault("dspex_lab.native", set()).add("template")
            fn = f"template({s.fn.text!r})"
        else:
            fn = self.ref(s.fn, s.name)
        opt = f"optional={list(s.optional)!r}, " if s.optional else ""
        return (f"native({fn}, inputs={list(s.inputs)!r}, outputs={list(s.outputs)!r}, "
                f"{opt}name={s.name!r})")

    def dspy(self, s: DSPyStep, depth: int) -> str:
        self.names.add("dspy_step")
        if s.custom is not None:
            cls = self.ref(type(s.custom), s.name)
            ins, outs = declared_fields(s.signature)
            args = [f"{cls}()", f"inputs={ins!r}", f"outputs={outs!r}"]
        else:
            args = [repr(str(s.signature))]
            if s.module != "predict":
                args.append(repr(s.module))
            if s.tools:
                args.append(f"tools=[{', '.join(self.ref(t, s.name) for t in s.tools)}]")
        args.append(f"name={s.name!r}")
        if s.signature.instructions and s.custom is None:
            args.append(f"instructions={s.signature.instructions!r}")
        if isinstance(s.lm, str):
            args.append(f"lm={s.lm!r}")
        if s.timeout is not None:
            args.append(f"timeout={s.timeout!r}")
        args += [f"{k}={v!r}" for k, v in s.options.items()]
        if s.state:
            pad = _IND * (depth + 2)
            state = pprint.pformat(dict(s.state), width=90, sort_dicts=False)
            args.append("state=" + state.replace("\n", "\n" + pad))
        return f"dspy_step({', '.join(args)})"


def to_code(pipeline: Pipeline, variable: str = "pipeline") -> str:
    """Source code that rebuilds ``pipeline`` and assigns it to ``variable``."""
    w = _Writer()
    body = "".join(f"{_IND * 2}{w.step(s, 1)},\n" for s in pipeline.steps)
    inputs, outputs = pipeline._declared
    kw = [f"name={pipeline.name!r}"]
    if inputs is not None:
        kw.append(f"inputs={list(inputs)!r}")
    if outputs is not None:
        kw.append(f"outputs={list(outputs)!r}")
    if pipeline.description:
        kw.append(f"description={pipeline.description!r}")
    if pipeline.continue_on_error:
        kw.append("continue_on_error=True")
    lines = [f"from dspex_lab.pipeline import {', '.join(sorted(w.names))}"]
    lines += [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(w.imports.items())]
    if w.todo:
        lines.append("# TODO: define " + "; ".join(w.todo))
    kwargs = "".join(f"{_IND}{k},\n" for k in kw)
    lines += ["", f"{variable} = Pipeline(\n{_IND}[\n{body}{_IND}],\n{kwargs})"]
    return "\n".join(lines) + "\n"
