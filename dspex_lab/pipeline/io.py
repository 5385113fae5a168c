"""Save and load pipelines as readable JSON (or YAML when pyyaml is installed).

The file holds data only: step types, names, fields, signature text, module kinds, options,
optimized demos and instructions. Code is referenced, never inlined, by default:

* native functions, ``when`` conditions, ReAct tools and custom ``dspy.Module`` classes are
  saved by import path (``package.module:qualname``) and imported when loading; a function
  defined in a notebook is saved as ``__main__:name`` and found again if the notebook defines
  it before loading;
* templates are saved as their text;
* lambdas and nested functions (closures) cannot be saved by import path: ``save`` raises a
  ``PipelineError`` naming the step, unless ``allow_pickle=True``, which embeds a base64
  cloudpickle blob next to the name. Loading a blob also needs ``allow_pickle=True``, because
  unpickling runs code: only load pickled pipelines you trust.

    >>> qa.save("qa.json")
    >>> Pipeline.load("qa.json")(question="What is 2 + 3?").answer
    '5'
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import ConfigurationError, PipelineError
from dspex_lab.pipeline.factories import declared_fields, dspy_step
from dspex_lab.pipeline.steps import DSPyStep, Map, NativeStep, Parallel, Sequence, Step, When
from dspex_lab.signatures import signature

if TYPE_CHECKING:
    from dspex_lab.pipeline.core import Pipeline

__all__ = ["FORMAT", "VERSION", "load", "pipeline_from_dict", "pipeline_to_dict", "save"]

FORMAT = "dspex_lab.pipeline"
VERSION = 1
_YAML = (".yaml", ".yml")


# -- to data -----------------------------------------------------------------------------------

def pipeline_to_dict(pipeline: Pipeline, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The JSON-ready form of ``pipeline`` (see the module docstring)."""
    inputs, outputs = pipeline._declared
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": pipeline.name}
    if pipeline.description:
        data["description"] = pipeline.description
    with contextlib.suppress(PipelineError):  # for readers; rebuilt from the steps
        data["signature"] = str(pipeline.signature)
    if inputs is not None:
        data["inputs"] = list(inputs)
    if outputs is not None:
        data["outputs"] = list(outputs)
    if pipeline.continue_on_error:
        data["continue_on_error"] = True
    data["steps"] = [_step(s, allow_pickle) for s in pipeline.steps]
    return data


def _step(step: Step, pickle: bool) -> dict[str, Any]:
    head: dict[str, Any] = {"type": step.kind, "name": step.name}
    if isinstance(step, NativeStep):
        return {**head, **_native(step, pickle)}
    if isinstance(step, DSPyStep):
        return {**head, **_dspy(step, pickle)}
    if isinstance(step, Sequence):
        return {**head, "steps": [_step(s, pickle) for s in step.steps]}
    if isinstance(step, Parallel):
        extra = {} if step.timeout is None else {"timeout": step.timeout}
        return {**head, **extra, "branches": [_step(s, pickle) for s in step.branches]}
    if isinstance(step, When):
        cond = step.condition if isinstance(step.condition, str) else \
            _ref(step.condition, "condition", step.name, pickle)
        out = {**head, "condition": cond, "then": _step(step.then, pickle)}
        if step.otherwise is not None:
            out["otherwise"] = _step(step.otherwise, pickle)
        return out
    if isinstance(step, Map):
        out = {**head, "field": step.field, "as": step.as_, "step": _step(step.step, pickle)}
        if step.max_concurrency is not None:
            out["max_concurrency"] = step.max_concurrency
        return out
    raise PipelineError(f"Cannot save a step of type {type(step).__name__}.", step=step.name)


def _native(step: NativeStep, pickle: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if step.is_template:
        out["template"] = step.fn.text
    else:
        out.update(_ref(step.fn, "function", step.name, pickle))
    out["inputs"] = list(step.inputs)
    out["outputs"] = list(step.outputs)
    if step.optional:
        out["optional"] = list(step.optional)
    if step.types:
        out["types"] = dict(step.types)
    return out


def _dspy(step: DSPyStep, pickle: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"signature": str(step.signature), "module": step.module}
    if step.signature.instructions:
        out["instructions"] = step.signature.instructions
    if step.custom is not None:
        out.update(_ref(type(step.custom), "class", step.name, pickle))
        if pickle:
            out["module_pickle"] = _pickle(step.custom)
    if step.tools:
        out["tools"] = [_ref(t, "function", step.name, pickle) for t in step.tools]
    if step.options:
        out["options"] = _jsonable(dict(step.options), "options", step.name)
    if step.lm is not None:
        if not isinstance(step.lm, str):
            raise PipelineError(
                f"Cannot save step {step.name!r}: its lm is a {type(step.lm).__name__} object. "
                "Give the step a configured LM name or a model string (lm='openai/gpt-4o-mini').",
                step=step.name)
        out["lm"] = step.lm
    if step.timeout is not None:
        out["timeout"] = step.timeout
    state = dict(step.state)
    if step.custom is not None:
        from dspex_lab.pipeline.dspy_module import predictor_states

        state = {**predictor_states(step.custom), **state}
    if state:
        out["state"] = _jsonable(state, "optimized state", step.name)
    return out


def _ref(obj: Callable[..., Any], key: str, step: str, pickle: bool) -> dict[str, Any]:
    from dspex_lab.persistence import import_path, resolve_import_path

    try:
        path = import_path(obj, what=f"{key} of step {step!r}")
        if not path.startswith("__main__:") and resolve_import_path(path) is not obj:
            raise ConfigurationError(f"{path!r} does not import back to the same object.")
    except ConfigurationError as exc:
        if not pickle:
            raise PipelineError(
                f"Cannot save step {step!r}: {exc} Or save with allow_pickle=True to embed it "
                "as a cloudpickle blob (loading then needs allow_pickle=True too).",
                step=step) from None
        name = getattr(obj, "__qualname__", type(obj).__name__)
        return {key: f"{getattr(obj, '__module__', '?')}:{name}", "pickle": _pickle(obj)}
    out: dict[str, Any] = {key: path}
    if pickle and path.startswith("__main__:"):
        out["pickle"] = _pickle(obj)
    return out


def _pickle(obj: Any) -> str:
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(obj)).decode("ascii")


def _jsonable(value: Any, what: str, step: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_fallback))
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"Cannot save the {what} of step {step!r}: {exc}.", step=step) from None


def _fallback(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


# -- from data ---------------------------------------------------------------------------------

def pipeline_from_dict(data: Mapping[str, Any], *, allow_pickle: bool = False) -> Pipeline:
    """Rebuild a pipeline from ``pipeline_to_dict`` data."""
    from dspex_lab.pipeline.core import Pipeline

    if data.get("format") != FORMAT:
        raise PipelineError(f"This is not a saved pipeline (format {data.get('format')!r}, "
                            f"expected {FORMAT!r}).")
    if data.get("version", VERSION) > VERSION:
        raise PipelineError(f"This pipeline file has version {data['version']}; this dspex_lab "
                            f"reads up to version {VERSION}. Upgrade dspex_lab.")
    steps = [_load_step(s, allow_pickle) for s in data.get("steps", [])]
    return Pipeline(steps, data.get("name"), inputs=data.get("inputs"),
                    outputs=data.get("outputs"), description=data.get("description"),
                    continue_on_error=bool(data.get("continue_on_error", False)))


def _load_step(d: Mapping[str, Any], pickle: bool) -> Step:
    kind, name = d.get("type"), d.get("name", "")
    if kind == "native":
        return _load_native(d, pickle)
    if kind == "dspy":
        return _load_dspy(d, pickle)
    if kind == "sequence":
        return Sequence(name, tuple(_load_step(s, pickle) for s in d["steps"]))
    if kind == "parallel":
        return Parallel(name, tuple(_load_step(s, pickle) for s in d["branches"]), d.get("timeout"))
    if kind == "when":
        cond = d["condition"]
        cond = cond if isinstance(cond, str) else _resolve(cond, "condition", name, pickle)
        other = d.get("otherwise")
        return When(name, cond, _load_step(d["then"], pickle),
                    None if other is None else _load_step(other, pickle))
    if kind == "map":
        return Map(name, d["field"], _load_step(d["step"], pickle), d.get("as", "item"),
                   d.get("max_concurrency"))
    raise PipelineError(f"Unknown step type {kind!r} in the saved pipeline (step {name!r}); "
                        "expected native, dspy, sequence, parallel, when or map.", step=name)


def _load_native(d: Mapping[str, Any], pickle: bool) -> NativeStep:
    if "template" in d:
        from dspex_lab.native.templates import template

        fn: Any = template(d["template"])
    else:
        fn = _resolve(d, "function", d["name"], pickle)
    types = tuple((d.get("types") or {}).items())
    return NativeStep(d["name"], fn, tuple(d.get("inputs", ())), tuple(d.get("outputs", ())),
                      tuple(d.get("optional", ())), types)


def _load_dspy(d: Mapping[str, Any], pickle: bool) -> DSPyStep:
    name = d["name"]
    sig = signature(d["signature"], d.get("instructions"))
    common = {"name": name, "lm": d.get("lm"), "timeout": d.get("timeout"),
              "state": d.get("state") or {}}
    if d.get("module") == "module":
        if pickle and "module_pickle" in d:
            custom = _unpickle(d["module_pickle"])
        else:
            cls = _resolve(d, "class", name, pickle)
            custom = _instantiate(cls, name)
        ins, outs = declared_fields(sig)
        return dspy_step(custom, inputs=ins, outputs=outs, **common)
    tools = [_resolve(t, "function", name, pickle) for t in d.get("tools", ())]
    return dspy_step(sig, d.get("module", "predict"), tools=tools, **common,
                     **(d.get("options") or {}))


def _resolve(entry: Mapping[str, Any], key: str, step: str, pickle: bool) -> Any:
    from dspex_lab.persistence import resolve_import_path

    if "pickle" in entry and pickle:
        return _unpickle(entry["pickle"])
    hint = (" (or load with allow_pickle=True to use the embedded copy)"
            if "pickle" in entry else "")
    try:
        return resolve_import_path(entry[key], what=f"{key} of step {step!r}", hint=hint)
    except ConfigurationError as exc:
        raise PipelineError(str(exc), step=step) from None


def _unpickle(blob: str) -> Any:
    import cloudpickle

    return cloudpickle.loads(base64.b64decode(blob))


def _instantiate(cls: Any, step: str) -> Any:
    try:
        return cls()
    except Exception as exc:
        raise PipelineError(
            f"Cannot rebuild the module of step {step!r}: {cls.__name__}() failed ({exc}). Give "
            "the class a constructor without arguments, or save with allow_pickle=True.",
            step=step) from None


# -- files -------------------------------------------------------------------------------------

def save(pipeline: Pipeline, path: str | Path, *, allow_pickle: bool = False) -> Path:
    """Write ``pipeline`` to ``path``: YAML for ``.yaml``/``.yml``, JSON otherwise."""
    path = Path(path)
    data = pipeline_to_dict(pipeline, allow_pickle=allow_pickle)
    if path.suffix.lower() in _YAML:
        text = _yaml().safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def load(path: str | Path, *, allow_pickle: bool = False) -> Pipeline:
    """Read a pipeline file written by ``save``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineError(f"Cannot read the pipeline file {str(path)!r}: {exc}.") from None
    try:
        data = (_yaml().safe_load(text) if path.suffix.lower() in _YAML else json.loads(text))
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise PipelineError(f"{str(path)!r} is not valid {path.suffix[1:].upper() or 'JSON'}: "
                            f"{exc}.") from None
    if not isinstance(data, Mapping):
        raise PipelineError(f"{str(path)!r} does not hold a saved pipeline.")
    return pipeline_from_dict(data, allow_pickle=allow_pickle)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise PipelineError("Saving or loading YAML needs pyyaml (pip install pyyaml); or use a "
                            ".json file.") from None
    return yaml
