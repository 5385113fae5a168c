"""LM configuration: the default and named LMs, the offline fallback, telemetry callbacks.

    >>> import dspex_lab
    >>> dspex_lab.configure(lm="openai/gpt-4o-mini")
    >>> dspex_lab.lm.get_lm()                     # a dspy.LM
    >>> dspex_lab.lm.lm_spec()                    # a picklable LMSpec for worker processes

Importing this package does not import DSPy; ``callbacks`` (which does) loads on first use.
"""

from __future__ import annotations

from dspex_lab._lazy import lazy_exports
from dspex_lab.lm.config import (
    EMBEDDED_MODEL,
    LMSpec,
    configure,
    embedded_server,
    get_lm,
    lm_spec,
    named_lms,
    reset,
    resolve,
    resolve_model,
    spec_from_lm,
)

_LAZY = {"TelemetryCallback": "dspex_lab.lm.callbacks", "install_callback":
         "dspex_lab.lm.callbacks", "get_callback": "dspex_lab.lm.callbacks"}

__all__ = [
    "EMBEDDED_MODEL",
    "LMSpec",
    "TelemetryCallback",
    "configure",
    "embedded_server",
    "get_callback",
    "get_lm",
    "install_callback",
    "lm_spec",
    "named_lms",
    "reset",
    "resolve",
    "resolve_model",
    "spec_from_lm",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, public=__all__)
