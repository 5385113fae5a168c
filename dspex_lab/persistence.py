"""Compiled programs and their readable JSON file form: ``CompiledProgram``, ``save``, ``load``.

A ``CompiledProgram`` is what ``optimize`` returns: the program it started from plus the DSPy
state the optimizer produced (``dump_state()``: demos, instructions, field prefixes). The file
is plain JSON, no pickle: program kind, signature text, instructions, tools and custom module
classes by import path (a pipeline: its own JSON form), optimizer, score, metadata and the DSPy
state.

    >>> compiled = dspex_lab.optimize("question -> answer", train, "exact_match")
    >>> compiled.save("qa.json")
    >>> again = dspex_lab.load("qa.json")
    >>> again.demos, dspex_lab.run(again, df)          # usable wherever a program is
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.kinds import MODULE_KINDS
from dspex_lab.programs import Program, as_program

__all__ = ["FORMAT", "CompiledProgram", "import_path", "load", "resolve_import_path"]

FORMAT = "dspex_lab.compiled_program"
VERSION = 2
"""Format version; 2: ``score`` is a percentage (0-100, like ``dspy.Evaluate``), 1: 0-1."""
_DSPY_KINDS = {MODULE_KINDS[kind]: kind for kind in ("predict", "cot")}


class CompiledProgram:
    """A program with optimized DSPy state. Pass it to ``run``/``predict``/``evaluate`` as is.

    ``program`` is a ``Program`` of kind ``module`` wrapping the compiled ``dspy.Module``
    (``module``), ``demos`` the number of few-shot demos, ``score`` the optimizer's validation
    score as a percentage (0-100, like ``dspy.Evaluate`` and ``evaluate().score``) when known.
    """

    def __init__(self, base: Program, state: dict[str, Any], *, optimizer: str = "",
                 score: float | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.base = base
        self.state = state
        self.optimizer = optimizer
        self.score = score
        self.metadata = dict(metadata or {})

    @property
    def predictors(self) -> dict[str, dict[str, Any]]:
        """The DSPy state of each predictor, by name (``self`` for a lone ``dspy.Predict``)."""
        return predictor_states(self.state)

    @property
    def demos(self) -> int:
        """The number of demos over all predictors."""
        return sum(len(p.get("demos") or []) for p in self.predictors.values())

    @property
    def instructions(self) -> dict[str, str]:
        """Each predictor's instructions (optimizers such as COPRO and MIPROv2 rewrite them)."""
        return {name: (p.get("signature") or {}).get("instructions", "")
                for name, p in self.predictors.items()}

    @cached_property
    def module(self) -> Any:
        """The compiled ``dspy.Module`` (built in this process on first use)."""
        base = self.base
        module = base.module.deepcopy() if base.kind == "module" else base.build()
        try:
            module.load_state(self.state)
        except Exception as exc:
            raise ConfigurationError(
                f"The saved state does not fit {self.base!r} ({type(exc).__name__}: {exc}); it "
                "was compiled for a program with other predictors."
            ) from exc
        return module

    @cached_property
    def program(self) -> Program:
        """A ``Program`` of kind ``module`` around the compiled module."""
        return Program("module", self.base.signature, (), self.module, {})

    def __dspex_program__(self) -> Program:
        return self.program

    def __call__(self, *, lm: Any = None, cache: bool = True, implementation: str | None = None,
                 timeout: float | None = None, **inputs: Any) -> Any:
        """Run the compiled program on one input (in a worker unless ``implementation="native"``);
        a ``dspy.Prediction``.

        >>> compiled(question="What is 2 + 3?").answer
        """
        from dspex_lab.calls import call_program

        return call_program("predict", self.program, inputs, lm=lm, cache=cache,
                            implementation=implementation, timeout=timeout)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form that ``save`` writes."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "program": describe_program(self.base),
            "optimizer": self.optimizer,
            "score": self.score,
            "demos": self.demos,
            "instructions": self.instructions,
            "metadata": self.metadata,
            "state": self.state,
        }

    def save(self, path: str | Path) -> Path:
        """Write the compiled program as readable JSON; returns the path.

        >>> compiled.save("qa.json")
        PosixPath('qa.json')
        """
        path = Path(path)
        body = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=_json_default)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body + "\n", encoding="utf-8")
        return path

    def _summary(self) -> list[tuple[str, str]]:
        items = [("program", repr(self.base)), ("optimizer", self.optimizer or "-"),
                 ("demos", str(self.demos))]
        if self.score is not None:
            items.append(("score", f"{self.score:.4g}%"))
        for key in ("trainset_size", "elapsed_s"):
            if key in self.metadata:
                value = self.metadata[key]
                items.append((key, f"{value:.1f}" if isinstance(value, float) else str(value)))
        return items

    def __repr__(self) -> str:
        return "CompiledProgram(" + ", ".join(f"{k}={v}" for k, v in self._summary()) + ")"

    def _repr_html_(self) -> str:
        from dspex_lab.display._html import box, table

        return box("compiled", table(self._summary()), title="Compiled program")


def predictor_states(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``dump_state()`` of a Predict is one predictor's state; of a module, one per name."""
    if "demos" in state and "signature" in state:
        return {"self": state}
    return {name: p for name, p in state.items() if isinstance(p, dict) and "demos" in p}


def describe_program(base: Program) -> dict[str, Any]:
    """The readable description of ``base``: kind, signature, instructions, tools, class."""
    kind, sig, module = base.kind, base.signature, base.module
    if kind == "module" and type(module).__name__ in _DSPY_KINDS and \
            type(module).__module__.startswith("dspy") and sig is not None:
        kind = _DSPY_KINDS[type(module).__name__]
        if kind == "cot" and "reasoning" in sig.output_names:
            sig = _without_output(sig, "reasoning")
    out: dict[str, Any] = {"kind": kind}
    if sig is not None:
        out["signature"] = str(sig)
        out["instructions"] = sig.instructions
    if kind == "module" and callable(getattr(module, "to_pipeline", None)):
        out["kind"] = "pipeline"  # a dspex_lab Pipeline (its to_dspy() module): saved whole
        out["pipeline"] = module.to_pipeline().to_dict()
        return out
    if kind == "module":
        out["module_class"] = import_path(type(module), what="module class")
        return out
    if base.tools:
        out["tools"] = [import_path(getattr(t, "func", t), what="tool") for t in base.tools]
    if base.options:
        out["options"] = json.loads(json.dumps(base.options, default=_json_default))
    return out


def _without_output(sig: Any, name: str) -> Any:
    from dspex_lab.signatures import Signature

    outputs = tuple(f for f in sig.outputs if f.name != name)
    return Signature(sig.inputs, outputs, sig.instructions)


def import_path(obj: Any, *, what: str = "object") -> str:
    """``"package.module:QualName"`` for a module-level function or class.

    Functions defined in a notebook are saved as ``__main__:name`` and found again when the
    notebook defines them before loading. Lambdas and nested functions cannot be saved.
    """
    qualname = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if not qualname or not module or "<" in qualname:
        raise ConfigurationError(
            f"Cannot save the {what} {obj!r} by import path: it is a lambda, a nested function or "
            "has no module. Define it at the top level of a module or notebook cell."
        )
    return f"{module}:{qualname}"


def resolve_import_path(path: str, *, what: str = "object", hint: str = "") -> Any:
    """The object at ``"package.module:QualName"`` (``__main__`` is the running notebook)."""
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = (sys.modules["__main__"] if module_name == "__main__"
                    else importlib.import_module(module_name))
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError, KeyError) as exc:
        where = ("define it in the notebook (or script) before loading"
                 if module_name == "__main__" else f"make module {module_name!r} importable")
        raise ConfigurationError(
            f"Cannot import the {what} {qualname!r} saved as {path!r} ({type(exc).__name__}: "
            f"{exc}). To load, {where}{hint}."
        ) from None


def load(path: str | Path, *, tools: Sequence[Callable[..., Any]] = (),
         module: Any = None) -> CompiledProgram:
    """Rebuild a ``CompiledProgram`` written by ``CompiledProgram.save``.

    ``tools`` replaces saved tools by name (for tools that cannot be imported); ``module`` gives
    an instance (or class) of a custom ``dspy.Module`` to load the state into.

    >>> compiled = dspex_lab.load("qa.json")
    >>> compiled.demos
    4
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"No compiled program at {str(path)!r}.") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{str(path)!r} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(
            f"{str(path)!r} is not a dspex_lab compiled program (no \"format\": {FORMAT!r}); "
            "write one with CompiledProgram.save(path)."
        )
    if data.get("version", 0) > VERSION:
        raise ConfigurationError(
            f"{str(path)!r} was written by a newer dspex_lab (format version "
            f"{data['version']}); upgrade dspex_lab to load it."
        )
    base = rebuild_program(data["program"], tools=tools, module=module)
    score = data.get("score")
    if isinstance(score, int | float) and data.get("version", 0) < 2:
        score = round(score * 100, 10)  # version 1 kept scores as 0-1
    compiled = CompiledProgram(base, data.get("state") or {}, optimizer=data.get("optimizer", ""),
                               score=score, metadata=data.get("metadata"))
    compiled.module  # noqa: B018 (build now, so a state that does not fit fails at load time)
    return compiled


def rebuild_program(desc: dict[str, Any], *, tools: Sequence[Callable[..., Any]] = (),
                    module: Any = None) -> Program:
    """The ``Program`` that ``describe_program`` described."""
    kind = desc.get("kind", "predict")
    if kind == "module":
        return as_program(_custom_module(desc, module))
    if kind == "pipeline":
        from dspex_lab.pipeline import Pipeline

        return as_program(Pipeline.from_dict(desc["pipeline"]))
    given = {getattr(getattr(t, "func", t), "__name__", ""): t for t in tools}
    resolved = []
    for ref in desc.get("tools", []):
        name = ref.rpartition(":")[2].rpartition(".")[2]
        resolved.append(given.get(name) or resolve_import_path(
            ref, what="tool", hint=f", or pass tools=[{name}] to dspex_lab.load"))
    return as_program(desc["signature"], module=kind, tools=resolved,
                      instructions=desc.get("instructions"), **desc.get("options", {}))


def _custom_module(desc: dict[str, Any], module: Any) -> Any:
    if module is not None and not isinstance(module, type):
        return module
    ref = desc.get("module_class", "")
    cls = module or resolve_import_path(
        ref, what="module class", hint=", or pass module=YourModule(...) to dspex_lab.load")
    try:
        return cls()
    except TypeError as exc:
        raise ConfigurationError(
            f"Cannot build the module class {ref!r} without arguments ({exc}); pass an instance: "
            "dspex_lab.load(path, module=YourModule(...))."
        ) from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
