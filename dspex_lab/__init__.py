"""dspex_lab: DSPy as a first-class, interactive citizen of Jupyter.

    >>> import dspex_lab
    >>> dspex_lab.predict("question -> answer", question="What is the capital of France?").answer
    'Paris'
    >>> results = dspex_lab.run("question -> answer", dataframe)      # one row per input

In a notebook: ``%load_ext dspex_lab`` then ``%%dspex question -> answer``.

Attributes load lazily, so ``import dspex_lab`` is fast and does not import DSPy.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # signatures
    "signature": "dspex_lab.signatures",
    "Signature": "dspex_lab.signatures",
    "Field": "dspex_lab.signatures",
    # LM configuration
    "configure": "dspex_lab.settings",
    "get_lm": "dspex_lab.lm",
    # single calls
    "predict": "dspex_lab.calls",
    "chain_of_thought": "dspex_lab.calls",
    "react": "dspex_lab.calls",
    # programs and routing
    "Program": "dspex_lab.programs",
    "as_program": "dspex_lab.programs",
    "get_router": "dspex_lab.router",
    # pools
    "get_pool": "dspex_lab.workers",
    "pool_status": "dspex_lab.workers",
    # batch runs over DataFrames
    "run": "dspex_lab.batch",
    "last_run": "dspex_lab.batch",
    "estimate": "dspex_lab.batch",
    "record": "dspex_lab.batch",
    "replay": "dspex_lab.batch",
    # evaluation, optimization, saved programs, templates
    "evaluate": "dspex_lab.evaluate",
    "EvaluationResult": "dspex_lab.evaluate",
    "optimize": "dspex_lab.optimize",
    "CompiledProgram": "dspex_lab.persistence",
    "load": "dspex_lab.persistence",
    "template": "dspex_lab.native.templates",
    "Template": "dspex_lab.native.templates",
    # pipelines
    "Pipeline": "dspex_lab.pipeline",
    # errors
    "DspexError": "dspex_lab.errors",
    "SignatureError": "dspex_lab.errors",
    "ValidationError": "dspex_lab.errors",
}

_SUBMODULES = {name: f"dspex_lab.{name}" for name in (
    "telemetry", "errors", "router", "workers", "lm_server", "testing", "exchange",
    "distributed", "pipeline", "widgets")}
_SUBMODULES["metrics"] = "dspex_lab.native.metrics"

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__", "load_ipython_extension",
                  "unload_ipython_extension"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    raise AttributeError(f"module 'dspex_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


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

