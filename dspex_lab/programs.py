"""A Program: a picklable description of what DSPy should run.

A program is either a module kind plus a signature (``predict``, ``cot``, ``react`` with tools)
or an arbitrary ``dspy.Module``. It travels to workers as a small value and is built there
once per process (see ``dspex_lab.runtime``).

    >>> prog = as_program("question -> answer", module="cot")
    >>> prog.kind, str(prog.signature)
    ('cot', 'question: str -> answer: str')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.signatures import Signature, signature

MODULE_KINDS: dict[str, str] = {
    "predict": "Predict",
    "cot": "ChainOfThought",
    "chain_of_thought": "ChainOfThought",
    "react": "ReAct",
    "module": "",
}
"""Module kinds and the dspy class each builds (``module`` wraps any ``dspy.Module``)."""


@dataclass(frozen=True, eq=False)
class Program:
    """What to run: ``kind`` + ``signature`` (+ ``tools``), or a ready ``module``."""

    kind: str
    signature: Signature | None = None
    tools: tuple[Callable[..., Any], ...] = ()
    module: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.signature.input_names if self.signature else ()

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.signature.output_names if self.signature else ()

    @cached_property
    def key(self) -> str:
        """A stable hash of everything that changes the program's answers (for caching)."""
        if self.kind == "module":
            try:
                state = json.dumps(self.module.dump_state(), sort_keys=True, default=str)
            except Exception:  # an exotic module: fall back to its identity
                state = repr(id(self.module))
            body = f"module:{type(self.module).__qualname__}:{state}"
        else:
            tools = ",".join(getattr(t, "__name__", repr(t)) for t in self.tools)
            opts = json.dumps(self.options, sort_keys=True, default=str)
            instr = self.signature.instructions or ""
            body = f"{self.kind}:{self.signature}:{instr}:{tools}:{opts}"
        return hashlib.sha256(body.encode()).hexdigest()[:24]

    def build(self) -> Any:
        """Build the ``dspy.Module`` (call this where DSPy runs: a worker or the kernel)."""
        import dspy

        if self.kind == "module":
            return self.module
        cls = getattr(dspy, MODULE_KINDS[self.kind])
        sig = self.signature.to_dspy()
        if self.kind == "react":
            return cls(sig, tools=list(self.tools), **self.options)
        return cls(sig, **self.options)

    def __repr__(self) -> str:
        if self.kind == "module":
            return f"Program(module={type(self.module).__name__})"
        return f"Program({self.kind}, {str(self.signature)!r})"


def as_program(obj: Any, *, module: str = "predict", tools: Sequence[Callable[..., Any]] = (),
               instructions: str | None = None, **options: Any) -> Program:
    """Turn a signature string, ``Signature``, ``dspy.Module`` or ``Program`` into a Program.

    >>> as_program("question -> answer").kind
    'predict'
    """
    if isinstance(obj, Program):
        return obj
    if hasattr(obj, "__dspex_program__"):
        return obj.__dspex_program__()
    if module not in MODULE_KINDS or module == "module":
        kinds = ", ".join(k for k in MODULE_KINDS if k != "module")
        raise ConfigurationError(f"Unknown module {module!r}; use one of: {kinds}.")
    if isinstance(obj, str):
        return Program(module, signature(obj, instructions), tuple(tools), None, options)
    if isinstance(obj, Signature):
        sig = obj.with_instructions(instructions) if instructions else obj
        return Program(module, sig, tuple(tools), None, options)
    if _is_dspy_module(obj):
        return Program("module", _module_signature(obj), (), obj, {})
    if isinstance(obj, type) and _is_dspy_signature_class(obj):
        return Program(module, Signature.from_dspy(obj), tuple(tools), None, options)
    raise TypeError(
        f"Cannot run a {type(obj).__name__}: pass a signature string such as "
        "'question -> answer', a dspex_lab Signature, a dspy.Module or a Pipeline."
    )


def _is_dspy_module(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("dspy")
               for c in type(obj).__mro__)


def _is_dspy_signature_class(obj: type) -> bool:
    return any(c.__name__ == "Signature" and c.__module__.startswith("dspy") for c in obj.__mro__)


def _module_signature(mod: Any) -> Signature | None:
    """The signature of a single-predictor module (Predict, ChainOfThought, ...), if any."""
    sig = getattr(mod, "signature", None)
    if sig is None and hasattr(mod, "predict"):
        sig = getattr(mod.predict, "signature", None)
    if sig is None:
        return None
    try:
        return Signature.from_dspy(sig)
    except Exception:
        return None
