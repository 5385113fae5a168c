"""Worker pools: warm Python processes that import DSPy once, so the kernel never freezes.

    >>> from dspex_lab.workers import get_pool
    >>> pool = get_pool("general")                 # one worker per CPU, DSPy pre-imported
    >>> pool.call(pow, 2, 10)
    1024
    >>> list(pool.map(len, ["a", "bb"]))
    [1, 2]
    >>> with pool.session() as s:                  # one pinned worker keeps state
    ...     s.store("qa", lambda: dspy.Predict("question -> answer"))
    ...     s.call("qa", question="2 + 2?")

Names load lazily: importing this package costs nothing until a pool is used (a worker imports
only what it needs).
"""

from __future__ import annotations

from dspex_lab._lazy import lazy_exports

_EXPORTS = {
    "WorkerPool": "dspex_lab.workers.pool",
    "TaskFuture": "dspex_lab.workers._task",
    "Session": "dspex_lab.workers.session",
    "stored": "dspex_lab.workers.session",
    "Pool": "dspex_lab.workers.contract",
    "PoolSession": "dspex_lab.workers.contract",
    "get_pool": "dspex_lab.workers.registry",
    "configure_pools": "dspex_lab.workers.registry",
    "pool_config": "dspex_lab.workers.registry",
    "pool_status": "dspex_lab.workers.registry",
    "shutdown_all": "dspex_lab.workers.registry",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
