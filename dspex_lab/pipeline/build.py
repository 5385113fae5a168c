"""Build-time checks: name every step, follow the fields through the steps, find wiring errors.

``build(steps)`` returns a ``Plan``: the named steps, the pipeline's inputs (declared, or
inferred as the fields read before anything writes them), its outputs (declared, or every field
a step writes that is not an input) and its ``Signature``.
Every wiring error raises ``PipelineError`` with ``step=`` set and the fields available there:

* a step reads a field that no earlier step writes (and that is not a declared input), or
  that is written only later or by another parallel branch;
* two parallel branches write the same field;
* a ``map`` over a field nobody provides, declared outputs nobody writes, duplicate or
  non-identifier step names.

    >>> from dspex_lab.pipeline.factories import dspy_step, native
    >>> plan = build([dspy_step("question -> answer"), native(len, inputs=["answer"],
    ...                                                          output="n")])
    >>> plan.inputs, plan.outputs
    (('question',), ('answer', 'n'))
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.errors import PipelineError
from dspex_lab.pipeline.factories import as_step
from dspex_lab.pipeline.steps import (
    DSPyStep,
    Map,
    NativeStep,
    Parallel,
    Sequence,
    Step,
    When,
    walk,
)
from dspex_lab.signatures import Field, Signature, TypeSpec

__all__ = ["Plan", "build", "name_steps"]

_AUTO = {"parallel": "parallel", "when": "when", "map": "map", "sequence": "steps"}
_INPUT = "<input>"


@dataclass(frozen=True, eq=False)
class Plan:
    """A checked pipeline: named ``steps``, ``inputs``, ``outputs``, field ``types``."""

    steps: tuple[Step, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    produced: tuple[str, ...]
    types: dict[str, tuple[TypeSpec, str | None, bool]] = field(default_factory=dict)
    declared_inputs: bool = False

    @property
    def by_name(self) -> dict[str, Step]:
        return {s.name: s for s in walk(self.steps)}

    def signature(self, instructions: str | None = None) -> Signature:
        """The pipeline's overall ``inputs -> outputs`` signature."""
        if not self.inputs or not self.outputs:
            side = "inputs" if not self.inputs else "outputs"
            raise PipelineError(f"This pipeline has no {side}, so it has no signature; add a "
                                f"step that {'reads' if side == 'inputs' else 'writes'} a field.")
        ins = tuple(self._field(n, "input") for n in self.inputs)
        outs = tuple(self._field(n, "output") for n in self.outputs)
        return Signature(ins, outs, instructions)

    def _field(self, name: str, kind: str) -> Field:
        spec, desc, typed = self.types.get(name, (TypeSpec("Any"), None, True))
        return Field(name, spec, desc, kind, typed)  # type: ignore[arg-type]


def build(steps: Iterable[Any], *, inputs: Iterable[str] | None = None,
          outputs: Iterable[str] | None = None) -> Plan:
    """Name and check ``steps``; raise ``PipelineError`` on the first wiring error."""
    named = name_steps(tuple(as_step(s) for s in steps))
    checker = _Checker(named, None if inputs is None else tuple(inputs))
    checker.sequence(named, {n: _INPUT for n in checker.inputs})
    outs = _outputs(checker, None if outputs is None else tuple(outputs))
    return Plan(named, tuple(checker.inputs), outs, tuple(checker.produced), checker.types,
                inputs is not None)


# -- naming ------------------------------------------------------------------------------------

def name_steps(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """Give every unnamed step a name and make names unique (``answer``, ``answer_2``)."""
    taken: dict[str, int] = {}

    def fix(step: Step) -> Step:
        base = step.name or _AUTO.get(step.kind, step.kind)
        if not base.isidentifier() or keyword.iskeyword(base):
            raise PipelineError(f"Step name {base!r} is not a valid Python identifier; use "
                                "letters, digits and underscores.", step=base)
        name = base
        if name in taken:
            taken[base] += 1
            while (name := f"{base}_{taken[base]}") in taken:
                taken[base] += 1
        taken.setdefault(name, 1)
        renamed = step if name == step.name else step.renamed(name)
        kids = tuple(fix(c) for c in step.children)
        return renamed.with_children(kids) if kids else renamed

    return tuple(fix(s) for s in steps)


# -- wiring ------------------------------------------------------------------------------------

class _Checker:
    """Follows the fields through the steps; ``available`` maps field -> who wrote it."""

    def __init__(self, steps: tuple[Step, ...], declared: tuple[str, ...] | None) -> None:
        self.declared = declared is not None
        self.inputs: list[str] = list(declared or ())
        self.produced: list[str] = []
        self.types: dict[str, tuple[TypeSpec, str | None, bool]] = {}
        self.writers: dict[str, str] = {}
        self.updated: set[str] = set()  # fields some step reads and writes back (inputs)
        for s in walk(steps):
            for f in s.writes:
                self.writers.setdefault(f, s.name)
            self.updated |= set(s.reads) & set(s.writes)

    def need(self, step: Step, name: str, available: dict[str, str]) -> None:
        if name in available:
            return
        have = ", ".join(sorted(available)) or "(none)"
        writer = self.writers.get(name)
        if writer is not None and name not in self.updated:
            raise PipelineError(
                f"Step {step.name!r} reads {name!r}, which is not available there (available: "
                f"{have}). {name!r} is written by step {writer!r}, which does not run before "
                f"{step.name!r} (it comes later or is in another parallel branch); reorder the "
                "steps.", step=step.name)
        if self.declared:
            raise PipelineError(
                f"Step {step.name!r} reads {name!r}, but no step writes it and it is not a "
                f"pipeline input (available: {have}). Add {name!r} to the inputs, add a step "
                "that writes it, or fix the field name.", step=step.name)
        self.inputs.append(name)
        available[name] = _INPUT

    def step(self, step: Step, available: dict[str, str]) -> set[str]:
        """Check ``step`` against ``available`` (updated in place); return the fields it wrote."""
        if isinstance(step, Sequence):
            return self.sequence(step.steps, available)
        if isinstance(step, Parallel):
            return self.parallel(step, available)
        if isinstance(step, When):
            return self.when(step, available)
        if isinstance(step, Map):
            return self.map(step, available)
        optional = step.optional if isinstance(step, NativeStep) else ()
        for name in step.reads:
            if name not in optional:
                self.need(step, name, available)
        self._types(step)
        return self._wrote(step, step.writes, available)

    def sequence(self, steps: tuple[Step, ...], available: dict[str, str]) -> set[str]:
        wrote: set[str] = set()
        for s in steps:
            wrote |= self.step(s, available)
        return wrote

    def parallel(self, step: Parallel, available: dict[str, str]) -> set[str]:
        owner: dict[str, str] = {}
        for branch in step.branches:
            for name in self.step(branch, dict(available)):
                if name in owner:
                    raise PipelineError(
                        f"Parallel step {step.name!r}: branches {owner[name]!r} and "
                        f"{branch.name!r} both write {name!r}. Branches run at the same time, so "
                        "give one of the fields another name.", step=step.name)
                owner[name] = branch.name
        return self._wrote(step, tuple(owner), available)

    def when(self, step: When, available: dict[str, str]) -> set[str]:
        if isinstance(step.condition, str):
            self.need(step, step.condition, available)
        sides = [self.step(b, dict(available)) for b in step.children]
        wrote = set().union(*sides)
        both = set.intersection(*sides) if len(sides) == 2 else set()
        for name in wrote - both - set(available):  # None when the other branch runs
            spec, desc, _ = self.types.get(name, (TypeSpec("Any"), None, True))
            self.types[name] = (TypeSpec("Union", (spec, TypeSpec("None"))), desc, True)
        return self._wrote(step, tuple(sorted(wrote)), available)

    def map(self, step: Map, available: dict[str, str]) -> set[str]:
        self.need(step, step.field, available)
        inner = {**available, step.as_: step.name}
        wrote = self.step(step.step, inner)
        for name in wrote:
            spec, desc, _ = self.types.get(name, (TypeSpec("Any"), None, True))
            self.types[name] = (TypeSpec("list", (spec,)), desc, True)
        return self._wrote(step, tuple(sorted(wrote)), available)

    def _wrote(self, step: Step, names: tuple[str, ...], available: dict[str, str]) -> set[str]:
        for name in names:
            available[name] = step.name
            if name not in self.produced:
                self.produced.append(name)
        return set(names)

    def _types(self, step: Step) -> None:
        if isinstance(step, DSPyStep):
            for f in step.signature.fields:
                if f.kind == "output" or f.name not in self.types:
                    self.types[f.name] = (f.type, f.description, f.typed)
            return
        if isinstance(step, NativeStep):
            known = dict(step.types)
            for name in (*step.inputs, *step.outputs):
                if name in step.outputs or name not in self.types:
                    text = known.get(name)
                    spec = TypeSpec.parse(text) if text else TypeSpec("Any")
                    self.types[name] = (spec, None, True)


def _outputs(checker: _Checker, declared: tuple[str, ...] | None) -> tuple[str, ...]:
    if declared is not None:
        for name in declared:
            if name not in checker.produced or name in checker.inputs:
                why = "is an input" if name in checker.inputs else "is not written by any step"
                raise PipelineError(
                    f"Pipeline output {name!r} {why}; outputs are fields the steps write that "
                    f"are not inputs (here: {', '.join(_written(checker)) or '(none)'}).")
        return declared
    return _written(checker)


def _written(checker: _Checker) -> tuple[str, ...]:
    return tuple(f for f in checker.produced if f not in checker.inputs)
