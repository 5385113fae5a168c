"""How DSPy steps run from the kernel: one step through the router, many rows through
``dspex_lab.batch.run``.

``KernelDSPy`` is the ``dspy_call`` strategy of ``pipeline(...)``: a single step becomes one
``dspex_lab.calls.call_program`` (a worker of the ``general`` pool, or a cached answer), and a
``map`` over a DSPy step with many items becomes one ``batch.run`` (rows in chunks on the pool,
with the result cache; no retries, as for a single step) instead of one task per item. That run
also becomes ``dspex_lab.batch.last_run()``.

    >>> call = KernelDSPy(lm="fast")
    >>> leaf = call(step, {"question": "What is 2 + 3?"}, None)
    >>> leaf.outputs["answer"], leaf.route
    ('5', 'pool')
"""

from __future__ import annotations

from typing import Any

from dspex_lab.errors import PipelineError
from dspex_lab.pipeline.run import Leaf
from dspex_lab.pipeline.steps import DSPyStep

__all__ = ["KernelDSPy"]

_META = {"error", "latency_ms", "prompt_tokens", "completion_tokens", "cost", "cached",
         "status", "error_type", "attempts"}  # batch.frame.RESULT_COLUMNS


class KernelDSPy:
    """Runs DSPy steps for a pipeline in the kernel (see the module docstring)."""

    bounds_timeout = True  # call_program honours ``timeout`` (LMTimeout / TaskTimeout)

    def __init__(self, lm: Any = None, *, cache: bool = True,
                 implementation: str | None = None) -> None:
        self.lm, self.cache, self.implementation = lm, cache, implementation

    def __call__(self, step: DSPyStep, values: dict[str, Any], timeout: float | None) -> Leaf:
        from dspex_lab.calls import call_program

        pred = call_program(step.operation, step.program(), values, lm=step.lm or self.lm,
                            cache=self.cache, implementation=self.implementation,
                            timeout=timeout)
        info = pred._dspex
        return Leaf(dict(pred.items()), info.route, info.prompt_tokens, info.completion_tokens,
                    info.cost, info.cached)

    def batch(self, step: DSPyStep, rows: list[dict[str, Any]]
              ) -> list[Leaf | BaseException] | None:
        """One result per row via ``batch.run``; None when batches do not apply (inline)."""
        if self.implementation == "native":
            return None
        from dspex_lab.batch import run

        names = step.signature.input_names
        frame = run(step.program(), [{k: r[k] for k in names} for r in rows],
                    lm=step.lm or self.lm, cache=self.cache, progress=False,
                    timeout=step.timeout or 60.0, max_retries=0)
        outputs = [c for c in frame.columns if c not in _META and c not in names]
        return [_leaf(step, rec, outputs) for rec in frame.to_dict("records")]


def _leaf(step: DSPyStep, rec: dict[str, Any], outputs: list[str]) -> Leaf | BaseException:
    error = rec.get("error")
    if isinstance(error, str) and error:
        return PipelineError(error, step=step.name)
    values = {k: _plain(rec.get(k)) for k in outputs}
    try:  # Arrow/pandas turned lists into arrays and ints into floats: coerce back
        declared = {k: values[k] for k in step.signature.output_names if k in values}
        values.update(step.signature.validate_outputs(declared))
    except Exception as exc:
        return exc
    cached = bool(rec.get("cached"))
    return Leaf(values, "native" if cached else "pool", int(rec.get("prompt_tokens") or 0),
                int(rec.get("completion_tokens") or 0), float(rec.get("cost") or 0.0), cached)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, float) and value != value:  # NaN: a missing value
        return None
    return value
