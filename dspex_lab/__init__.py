"""dspex_lab: DSPy as a first-class, interactive citizen of Jupyter.

    >>> import dspex_lab
    >>> dspex_lab.predict("question -> answer", question="What is the capital of France?").answer
    'Paris'
    >>> results = dspex_lab.run("question -> answer", dataframe)      # one row per input

In a notebook: ``%load_ext dspex_lab`` then ``%%dspex question -> answer``.

Attributes load lazily, so ``import dspex_lab`` is fast and does not import DSPy.
"""

from __future__ import annotations

from typing import Any

from dspex_lab import _env
from dspex_lab._lazy import lazy_exports

_env.apply()

__version__ = "0.1.0"

PUBLIC = ("signature", "Signature", "configure", "predict", "chain_of_thought", "react", "run",
          "last_run", "estimate", "evaluate", "optimize", "load", "Pipeline", "template",
          "errors")
"""The public face: what ``dir(dspex_lab)`` lists. Everything else lives in a subpackage
(``dspex_lab.workers.get_pool``, ``dspex_lab.batch.record``...); the older top-level spellings
below still resolve."""

_EXPORTS: dict[str, str] = {
    # the public face
    "signature": "dspex_lab.signatures",
    "Signature": "dspex_lab.signatures",
    "configure": "dspex_lab.settings",
    "predict": "dspex_lab.calls",
    "chain_of_thought": "dspex_lab.calls",
    "react": "dspex_lab.calls",
    "run": "dspex_lab.batch",
    "last_run": "dspex_lab.batch",
    "estimate": "dspex_lab.batch",
    "evaluate": "dspex_lab.evaluate",
    "optimize": "dspex_lab.optimize",
    "load": "dspex_lab.persistence",
    "Pipeline": "dspex_lab.pipeline",
    "template": "dspex_lab.native.templates",
    # older spellings, still resolving (import them from their subpackage)
    "Field": "dspex_lab.signatures",
    "get_lm": "dspex_lab.lm",
    "Program": "dspex_lab.programs",
    "as_program": "dspex_lab.programs",
    "get_router": "dspex_lab.router",
    "get_pool": "dspex_lab.workers",
    "pool_status": "dspex_lab.workers",
    "record": "dspex_lab.batch",
    "replay": "dspex_lab.batch",
    "EvaluationResult": "dspex_lab.evaluate",
    "CompiledProgram": "dspex_lab.persistence",
    "Template": "dspex_lab.native.templates",
    "DspexError": "dspex_lab.errors",
    "SignatureError": "dspex_lab.errors",
    "ValidationError": "dspex_lab.errors",
}

_SUBMODULES = {name: f"dspex_lab.{name}" for name in (
    "errors", "telemetry", "router", "workers", "lm_server", "testing", "exchange",
    "distributed", "pipeline", "widgets", "batch", "retrieval")}
_SUBMODULES["metrics"] = "dspex_lab.native.metrics"

__all__ = [*PUBLIC, "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, submodules=_SUBMODULES,
                                    public=[*PUBLIC, "__version__", "load_ipython_extension",
                                            "unload_ipython_extension"])


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext dspex_lab``: register the magics, the config and the JupyterLab comm."""
    from dspex_lab.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext dspex_lab``."""
    from dspex_lab.magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "dspex-lab"}]

