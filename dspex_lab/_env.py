"""The environment every dspex_lab process needs, in one place (the kernel sets it on import;
pool processes get it from their zygote, Dask workers when they import dspex_lab)."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["DEFAULTS", "apply"]

DEFAULTS = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
"""litellm reads its bundled model cost map instead of fetching one from the internet."""


def apply(environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set each of ``DEFAULTS`` in ``environ`` (``os.environ``) unless already set."""
    target = os.environ if environ is None else environ
    for key, value in DEFAULTS.items():
        target.setdefault(key, value)
    return target
