"""Running a Program where DSPy lives (a worker process, or the kernel when asked).

Built modules and LMs are cached per process, so a warm worker pays for them once. The
kernel's dspy settings (adapter, ...) come along with each call (``kernel_settings``).

What a program returns is what the row gets (``outputs_of``): a ``dspy.Prediction`` (or a
``dspy.Example``) gives its fields; a dict with string keys gives its items, one output per
key (as a Prediction would); any other value -- a ``str``, a list, a number, a tuple, a
pydantic model, None -- is one output named ``output`` holding the value as it was returned.

    >>> out = run_program(as_program("question -> answer"), {"question": "2 + 2?"}, lm_spec())
    >>> out["outputs"]["answer"], out["prompt_tokens"], out["latency_ms"]
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

from dspex_lab.kernel_settings import ADAPTERS, KernelSettings, make_adapter
from dspex_lab.programs import Program

__all__ = ["ADAPTERS", "OUTPUT", "build_lm", "build_module", "completions_of", "make_adapter",
           "outputs_of", "run_program"]

_MODULES: OrderedDict[tuple[str, str], Any] = OrderedDict()
_LMS: dict[Any, Any] = {}
_LOCK = threading.Lock()
_MAX_MODULES = 256

OUTPUT = "output"
"""The output name of a program that returns a plain value instead of a Prediction."""


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


def _thread_safe_progress_bars() -> None:
    """Make tqdm's registry of bars safe for rows running in threads, once per process.

    ``module.batch``/``dspy.Parallel`` inside ``forward`` create (disabled) tqdm bars and
    clear ``tqdm._instances`` without tqdm's lock; with a worker's rows in threads, that
    races (``KeyError: <weakref ...>``, seen with plain DSPy in threads too). A locked
    registry that forgets a bar twice without error removes the race, not the bars.
    """
    global _PROGRESS_SAFE
    if _PROGRESS_SAFE:
        return
    _PROGRESS_SAFE = True
    try:
        import tqdm
    except ImportError:  # pragma: no cover - dspy depends on tqdm
        return
    bars = tqdm.tqdm._instances
    if not isinstance(bars, _LockedWeakSet):
        tqdm.tqdm._instances = _LockedWeakSet(bars)


class _LockedWeakSet(weakref.WeakSet):
    """A WeakSet whose changes and iteration hold one lock; ``remove`` of a missing item is
    a no-op (tqdm's own ``_decr_instances`` already treats it so)."""

    def __init__(self, data: Any = None) -> None:
        self._guard = threading.RLock()
        super().__init__(data)

    def add(self, item: Any) -> None:
        with self._guard:
            super().add(item)

    def remove(self, item: Any) -> None:
        with self._guard:
            self.discard(item)

    def discard(self, item: Any) -> None:
        with self._guard:
            super().discard(item)

    def clear(self) -> None:
        with self._guard:
            super().clear()

    def __iter__(self):
        with self._guard:
            items = list(super().__iter__())
        return iter(items)

    def __len__(self) -> int:
        with self._guard:
            return super().__len__()


_PROGRESS_SAFE = False


def build_module(program: Program) -> Any:
    """The ``dspy.Module`` for ``program``, built once per process (bounded LRU)."""
    _thread_safe_progress_bars()
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


def run_program(program: Program, inputs: dict[str, Any], lm: Any, *,
                adapter: Any = None, temperature: float | None = None,
                lm_overrides: dict[str, Any] | None = None,
                settings: KernelSettings | None = None) -> dict[str, Any]:
    """Run ``program`` on one row of ``inputs`` with the LM of ``lm`` (an ``LMSpec``).

    Returns a plain dict: ``outputs`` (field -> value, see ``outputs_of``),
    ``prompt_tokens``, ``completion_tokens``, ``cost``, ``latency_ms``, ``model`` and
    ``lm_usage`` (DSPy's per-model usage). Exceptions propagate. ``adapter`` is a short name
    or an adapter instance; ``settings`` the kernel's carried dspy settings (their adapter
    unless ``adapter`` is given). ``lm_overrides`` are ``dspy.LM`` settings for this call
    (batch runs pass ``num_retries=0, cache=False``: they retry themselves).
    """
    import dspy

    from dspex_lab.usage import usage_totals

    module = build_module(program)
    overrides = dict(lm_overrides or {})
    if temperature is not None:
        overrides["temperature"] = temperature
    dspy_lm = build_lm(lm, **overrides)
    carried = settings or KernelSettings()
    extra: dict[str, Any] = {"lm": dspy_lm}
    if adapter is not None:
        extra["adapter"] = make_adapter(adapter)
    start = time.perf_counter()
    with carried.context(**extra), dspy.track_usage() as tracker:
        prediction = module(**inputs)
    latency_ms = (time.perf_counter() - start) * 1e3
    lm_usage = tracker.get_total_tokens()
    prompt_tokens, completion_tokens, cost = usage_totals(lm_usage)
    return {
        "outputs": outputs_of(prediction),
        "completions": completions_of(prediction),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
        "latency_ms": latency_ms,
        "model": dspy_lm.model,
        "lm_usage": lm_usage,
    }


def outputs_of(value: Any) -> dict[str, Any]:
    """The outputs of what a program returned (see the module docstring).

    >>> outputs_of(dspy.Prediction(answer="4")), outputs_of("4"), outputs_of({"a": 1})
    ({'answer': '4'}, {'output': '4'}, {'a': 1})
    """
    items = getattr(value, "items", None)
    if _is_example(value) and callable(items):
        return dict(items())
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return dict(value)
    return {OUTPUT: value}


def completions_of(value: Any) -> list[dict[str, Any]] | None:
    """Every completion of a ``dspy.Prediction`` with more than one (``dspy.Predict(sig,
    n=3)``), as dicts; None otherwise (the outputs are the first completion's fields)."""
    completions = getattr(value, "completions", None) if _is_example(value) else None
    if completions is None or len(completions) < 2:
        return None
    return [dict(completions[i].items()) for i in range(len(completions))]


def _is_example(value: Any) -> bool:
    """A ``dspy.Prediction`` or ``dspy.Example`` (without importing dspy)."""
    return any(c.__name__ == "Example" and c.__module__.startswith("dspy")
               for c in type(value).__mro__)
