"""Running a Program where DSPy lives (a worker process, or the kernel when asked).

Built modules and LMs are cached per process, so a warm worker pays for them once.

    >>> out = run_program(as_program("question -> answer"), {"question": "2 + 2?"}, lm_spec())
    >>> out["outputs"]["answer"], out["prompt_tokens"], out["latency_ms"]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from dspex_lab.programs import Program

_MODULES: OrderedDict[tuple[str, str], Any] = OrderedDict()
_LMS: dict[Any, Any] = {}
_LOCK = threading.Lock()
_MAX_MODULES = 256

ADAPTERS = {"chat": "ChatAdapter", "json": "JSONAdapter", "xml": "XMLAdapter"}


def build_lm(spec: Any, **overrides: Any) -> Any:
    """A ``dspy.LM`` for ``spec`` (an ``LMSpec``), built once per process; ``overrides``
    (e.g. ``num_retries=0, temperature=0.7``) give a cached ``lm.copy(**overrides)``."""
    key = (spec, tuple(sorted(overrides.items()))) if overrides else spec
    with _LOCK:
        lm = _LMS.get(key)
        if lm is None:
            base = _LMS.get(spec)
            if base is None:
                base = _LMS[spec] = spec.build()
            lm = _LMS[key] = base.copy(**overrides) if overrides else base
        return lm


def build_module(program: Program) -> Any:
    """The ``dspy.Module`` for ``program``, built once per process (bounded LRU)."""
    key = (program.kind, program.key)
    with _LOCK:
        module = _MODULES.get(key)
        if module is not None:
            _MODULES.move_to_end(key)
            return module
    module = program.build()
    with _LOCK:
        _MODULES[key] = module
        while len(_MODULES) > _MAX_MODULES:
            _MODULES.popitem(last=False)
    return module


def make_adapter(name: str | None) -> Any:
    """A dspy adapter from a short name (``chat``, ``json``, ``xml``); None keeps DSPy's."""
    if name is None:
        return None
    import dspy

    try:
        return getattr(dspy, ADAPTERS[name])()
    except KeyError:
        raise ValueError(
            f"Unknown adapter {name!r}; use one of: {', '.join(ADAPTERS)}."
        ) from None


def run_program(program: Program, inputs: dict[str, Any], lm: Any, *,
                adapter: str | None = None, temperature: float | None = None,
                lm_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``program`` on one row of ``inputs`` with the LM of ``lm`` (an ``LMSpec``).

    Returns a plain dict: ``outputs`` (field -> value), ``prompt_tokens``,
    ``completion_tokens``, ``cost``, ``latency_ms``, ``model``. Exceptions propagate.
    ``lm_overrides`` are ``dspy.LM`` settings for this call (batch runs pass
    ``num_retries=0, cache=False``: they retry themselves).
    """
    import dspy

    from dspex_lab.usage import usage_totals

    module = build_module(program)
    overrides = dict(lm_overrides or {})
    if temperature is not None:
        overrides["temperature"] = temperature
    dspy_lm = build_lm(lm, **overrides)
    settings: dict[str, Any] = {"lm": dspy_lm}
    if adapter is not None:
        settings["adapter"] = make_adapter(adapter)
    start = time.perf_counter()
    with dspy.context(**settings), dspy.track_usage() as tracker:
        prediction = module(**inputs)
    latency_ms = (time.perf_counter() - start) * 1e3
    prompt_tokens, completion_tokens, cost = usage_totals(tracker.get_total_tokens())
    return {
        "outputs": _prediction_outputs(prediction, program),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
        "latency_ms": latency_ms,
        "model": dspy_lm.model,
    }


def _prediction_outputs(prediction: Any, program: Program) -> dict[str, Any]:
    """Every field of the prediction (outputs, plus ``reasoning``/``trajectory`` if any)."""
    return dict(prediction.items()) if hasattr(prediction, "items") else dict(prediction)
