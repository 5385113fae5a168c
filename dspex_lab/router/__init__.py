"""The router: every public operation goes through one place that picks where it runs.

    >>> from dspex_lab.router import get_router
    >>> get_router().plan("predict")            # which implementation, and why
    >>> get_router().call("validate", sig, inputs)

Implementations: ``native`` (in the kernel, no IPC), ``pool`` (DSPy in a worker process) and
``distributed`` (the same pool API on Dask).
"""

from dspex_lab.router.registry import IMPLEMENTATIONS, Operation, Registry
from dspex_lab.router.router import Route, Router, get_router, register

__all__ = ["IMPLEMENTATIONS", "Operation", "Registry", "Route", "Router", "get_router", "register"]
