"""A Program: a picklable description of what DSPy should run.

A program is either a module kind plus a signature (``predict``, ``cot``, ``react`` with tools)
or an arbitrary ``dspy.Module``. It travels to workers as a small value and is built there
once per process (see ``dspex_lab.runtime``).

A ``dspy.Signature`` class is kept as it is (``dspy_signature``) and the module is built from
that very class, so the prompt is exactly DSPy's. A module's inputs are its declared
signature's when its ``forward`` is DSPy's own (``Predict``, ``ChainOfThought``, ``ReAct``...);
otherwise they are the parameters of its ``forward`` (a ``forward(**kwargs)`` takes every
column). What a module returns becomes the row's outputs: see ``runtime.outputs_of``.

    >>> prog = as_program("question -> answer", module="cot")
    >>> prog.kind, str(prog.signature)
    ('cot', 'question: str -> answer: str')
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.identity import fingerprint
from dspex_lab.kinds import MODULE_KINDS
from dspex_lab.signatures import Signature, signature


@dataclass(frozen=True, eq=False)
class Program:
    """What to run: ``kind`` + ``signature`` (+ ``tools``), or a ready ``module``."""

    kind: str
    signature: Signature | None = None
    tools: tuple[Callable[..., Any], ...] = ()
    module: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    dspy_signature: Any = None  # the user's own dspy.Signature class, built as it is

    @property
    def input_names(self) -> tuple[str, ...]:
        """The input fields; for a module without a signature, its ``forward`` parameters
        (empty when it takes ``**kwargs``: every column)."""
        if self.signature is not None:
            return self.signature.input_names
        if self.dspy_signature is not None:
            return tuple(self.dspy_signature.input_fields)
        if self.module is not None:
            return forward_inputs(self.module) or ()
        return ()

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        """``forward`` parameters with a default (a run passes them when a column has the
        name); empty for signatures."""
        if self.signature is not None or self.dspy_signature is not None or self.module is None:
            return ()
        return forward_inputs(self.module, optional=True) or ()

    @property
    def output_names(self) -> tuple[str, ...]:
        if self.signature is not None:
            return self.signature.output_names
        if self.dspy_signature is not None:
            return tuple(self.dspy_signature.output_fields)
        return ()

    @cached_property
    def key(self) -> str:
        """A stable hash of everything that decides the program's answers (the result cache
        and the workers' built-module cache use it; see ``dspex_lab.identity``): a module's
        code, attributes, sub-modules, tools, signatures (with field types) and demos; or the
        kind, signature (and ``dspy_signature`` class), tools' code and options."""
        if self.kind == "module":
            return fingerprint(("module", self.module))[:24]
        return fingerprint((self.kind, self.signature, self.dspy_signature, self.tools,
                            self.options))[:24]

    def build(self) -> Any:
        """Build the ``dspy.Module`` (call this where DSPy runs: a worker or the kernel)."""
        import dspy

        if self.kind == "module":
            return self.module
        cls = getattr(dspy, MODULE_KINDS[self.kind])
        sig = self.dspy_signature if self.dspy_signature is not None else self.signature.to_dspy()
        if self.kind == "react":
            return cls(sig, tools=list(self.tools), **self.options)
        return cls(sig, **self.options)

    def __repr__(self) -> str:
        if self.kind == "module":
            return f"Program(module={type(self.module).__name__})"
        if self.dspy_signature is not None:
            return f"Program({self.kind}, {self.dspy_signature.__name__})"
        return f"Program({self.kind}, {str(self.signature)!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (to a worker): notebook-defined types travel resolved (``portable``)."""
        from dspex_lab.portable import make_portable

        make_portable(self.dspy_signature, self.module)
        return dict(self.__dict__)


def as_program(obj: Any, *, module: str = "predict", tools: Sequence[Callable[..., Any]] = (),
               instructions: str | None = None, **options: Any) -> Program:
    """Turn a signature string, ``Signature``, ``dspy.Signature`` class, ``dspy.Module`` or
    ``Program`` into a Program. ``options`` are the DSPy module's own keyword arguments
    (``dspy.Predict``'s config such as ``n=3``, ``ChainOfThought``'s ``rationale_field``,
    ``ReAct``'s ``max_iters``); ``tools`` are ``ReAct``'s.

    >>> as_program("question -> answer").kind
    'predict'
    """
    if isinstance(obj, Program):  # a fresh copy: its key is computed again, from the program
        return dataclasses.replace(obj)  # as it is now (a tool's global may have changed)
    if hasattr(obj, "__dspex_program__"):
        return dataclasses.replace(obj.__dspex_program__())
    if module not in MODULE_KINDS or module == "module":
        kinds = ", ".join(k for k in MODULE_KINDS if k != "module")
        raise ConfigurationError(f"Unknown module {module!r}; use one of: {kinds}.")
    if tools and module != "react":
        raise ConfigurationError(
            f"tools= are for module='react' (a dspy.ReAct); module={module!r} takes none. "
            "Pass module='react', or drop tools=.")
    if isinstance(obj, str):
        return Program(module, signature(obj, instructions), tuple(tools), None, options)
    if isinstance(obj, Signature):
        sig = obj.with_instructions(instructions) if instructions else obj
        return Program(module, sig, tuple(tools), None, options)
    if _is_dspy_module(obj):
        if tools or options or instructions:
            raise ConfigurationError(
                f"A {type(obj).__name__} module runs as it is: tools=, instructions= and "
                "module options apply to signatures. Set them on the module itself, or "
                "pass a signature.")
        _check_callable_by_name(obj)
        return Program("module", _module_signature(obj), (), obj, {})
    if isinstance(obj, type) and _is_dspy_signature_class(obj):
        cls = obj.with_instructions(instructions) if instructions else obj
        return Program(module, _described(cls), tuple(tools), None, options, dspy_signature=cls)
    raise TypeError(
        f"Cannot run a {type(obj).__name__}: pass a signature string such as "
        "'question -> answer', a dspex_lab Signature, a dspy.Signature class, a dspy.Module "
        "or a Pipeline."
    )


def _check_callable_by_name(mod: Any) -> None:
    """dspex_lab calls ``module(**inputs)`` (sync, inputs by name), as a notebook loop over
    ``df.to_dict("records")`` does: an async-only module or a ``forward(*args)`` cannot run."""
    cls = type(mod)
    if getattr(cls, "forward", None) is None and callable(getattr(cls, "aforward", None)):
        raise ConfigurationError(
            f"{cls.__name__} defines only aforward(): dspex_lab runs a module's forward() in "
            "worker threads and does not run async modules. Add a forward() (e.g. "
            "`def forward(self, **kw): return asyncio.run(self.aforward(**kw))`), or call "
            "`await module.acall(...)` in the notebook.")
    forward = getattr(cls, "forward", None)
    try:
        params = list(inspect.signature(forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY,
                                             p.VAR_KEYWORD)]
    if not named and any(p.kind is p.VAR_POSITIONAL for p in params):
        raise ConfigurationError(
            f"{cls.__name__}.forward takes only *args; dspex_lab passes each row's columns "
            "by name (module(**row)). Give forward named parameters (or **kwargs).")


def _is_dspy_module(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("dspy")
               for c in type(obj).__mro__)


def _is_dspy_signature_class(obj: type) -> bool:
    return any(c.__name__ == "Signature" and c.__module__.startswith("dspy") for c in obj.__mro__)


def _from_dspy(cls: Any) -> Signature | None:
    try:
        return Signature.from_dspy(cls)
    except Exception:  # a type the DSL has no text form for
        return None


def _described(cls: Any) -> Signature:
    """The dspex_lab ``Signature`` of a ``dspy.Signature`` class (for validation, names and
    caching); fields whose types the DSL cannot write are ``Any`` (DSPy still gets the
    class itself)."""
    sig = _from_dspy(cls)
    if sig is not None:
        return sig
    inputs = ", ".join(f"{name}: Any" for name in cls.input_fields)
    outputs = ", ".join(f"{name}: Any" for name in cls.output_fields)
    return signature(f"{inputs} -> {outputs}", cls.instructions or None)


def _dspy_forward(mod: Any) -> bool:
    """True when the module's ``forward`` is DSPy's own (a Predict, ChainOfThought, ...)."""
    forward = getattr(type(mod), "forward", None)
    return forward is None or (getattr(forward, "__module__", "") or "").startswith("dspy.")


def forward_inputs(mod: Any, *, optional: bool = False) -> tuple[str, ...] | None:
    """The named parameters of ``mod.forward`` without a default (``optional``: those with
    one), ``self`` left out; None when it takes ``**kwargs`` or cannot be inspected (then a
    run passes every column)."""
    forward = getattr(type(mod), "forward", None)  # not the instance: DSPy warns
    if forward is None:
        return None
    try:
        params = list(inspect.signature(forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and (p.default is not p.empty) == optional)


def _module_signature(mod: Any) -> Signature | None:
    """The signature of a module whose ``forward`` is DSPy's own (Predict, ChainOfThought,
    ReAct...), if it has one. A module with its own ``forward`` has none: its inputs are
    that ``forward``'s parameters, whatever its sub-predictors are called."""
    if not _dspy_forward(mod):
        return None
    sig = getattr(mod, "signature", None)
    if sig is None and hasattr(mod, "predict"):
        sig = getattr(mod.predict, "signature", None)
    if sig is None or not isinstance(sig, type):
        return None
    return _described(sig)
