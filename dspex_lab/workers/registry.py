"""Named pools: ``get_pool("general")`` and ``get_pool("optimizer")`` made once, on first use.

    >>> configure_pools({"general": {"size": 4}, "mine": {"size": 1, "preload": ()}})
    >>> get_pool("mine").call(pow, 2, 5)
    32
    >>> [s["name"] for s in pool_status()]
    ['general', 'mine']

``general`` has one worker per CPU; ``optimizer`` has one worker whose numeric libraries are
limited to one thread (an optimizer run is long and should not fight the other pools for
cores). Both preload DSPy and dspex_lab's worker side (``PRELOAD``). Every pool is shut
down at interpreter exit.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.workers.pool import WorkerPool, shutdown_live_pools

__all__ = ["configure_pools", "get_pool", "pool_config", "pool_status", "release_if_unused",
           "shutdown_all"]

_ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}

PRELOAD = ("dspy", "dspex_lab.calls", "dspex_lab.runtime", "dspex_lab.batch.chunk",
           "dspex_lab.batch.transport")
"""What dspex_lab's own pools import in their zygote: DSPy and the worker side of single calls
and batch chunks, so a worker's first task does not pay for imports (~0.3 s)."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "general": {"size": None, "preload": PRELOAD},
    "optimizer": {"size": 1, "env": _ONE_THREAD, "preload": PRELOAD},
}
_OPTIONS = [p for p in inspect.signature(WorkerPool).parameters if p != "name"]
_IN_PLACE = {"size", "task_timeout", "max_tasks_per_worker", "max_rss_mb", "max_queue",
             "max_attempts", "queue_timeout", "cancel_grace", "health_interval", "task_events"}

_lock = threading.RLock()
_config: dict[str, dict[str, Any]] = {name: dict(opts) for name, opts in DEFAULTS.items()}
_pools: dict[str, WorkerPool] = {}


def get_pool(name: str = "general") -> WorkerPool:
    """The pool called ``name``, created on first use (and again after a shutdown). With the
    Dask backend active (``dspex_lab.configure(backend="dask")``), its ``DaskPool`` instead.

    >>> get_pool().call(sum, [1, 2])
    3
    """
    remote = _backend_pool(name)
    if remote is not None:  # dspex_lab.configure(backend="dask"): the cluster runs the tasks
        return remote
    from dspex_lab.distributed import backend_pool

    remote = backend_pool(name)  # the Dask backend, when configure(backend="dask") chose it
    if remote is not None:
        return remote
    with _lock:
        pool = _pools.get(name)
        if pool is not None and pool._state in ("new", "running"):
            return pool
        if name not in _config:
            raise ConfigurationError(
                f"There is no pool named {name!r} (known: {', '.join(sorted(_config))}). "
                f"Define it first: configure_pools({{{name!r}: {{'size': 2}}}}).")
        pool = _pools[name] = WorkerPool(name=name, **_config[name])
        return pool


def configure_pools(spec: dict[str, dict[str, Any] | None]) -> None:
    """Add or change named pools; ``None`` removes one (and shuts it down).

    Size and limits apply to a running pool at once; a change of ``env`` or ``preload``
    restarts it (running tasks finish first).

    >>> configure_pools({"general": {"size": 4, "task_timeout": 120}})
    """
    if not isinstance(spec, dict):
        raise ConfigurationError(f"configure_pools() takes a dict of pool name -> options, "
                                 f"not {type(spec).__name__}.")
    for name, options in spec.items():
        if options is not None:
            _check_options(name, options)
    with _lock:
        for name, options in spec.items():
            if options is None:
                _config.pop(name, None)
                pool = _pools.pop(name, None)
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=False)
                continue
            new = {**_config.get(name, {}), **options}
            _config[name] = new
            pool = _pools.get(name)
            if pool is None or pool._state not in ("new", "running"):
                continue
            if set(options) <= _IN_PLACE:
                _apply(pool, options)
            else:  # a new environment needs a new zygote: replace the pool
                del _pools[name]
                pool.shutdown(wait=False, cancel_futures=False)


def pool_config(name: str) -> dict[str, Any]:
    """The options ``get_pool(name)`` uses."""
    with _lock:
        if name not in _config:
            raise ConfigurationError(f"There is no pool named {name!r}.")
        return dict(_config[name])


def pool_status() -> list[dict[str, Any]]:
    """``status()`` of every pool created so far in this process."""
    with _lock:
        pools = [p for p in _pools.values() if p._state in ("new", "running")]
    return [p.status() for p in pools]


def release_if_unused(name: str) -> bool:
    """Shut down pool ``name`` if it exists and has never run a task (a pool warmed up ahead
    of use that is no longer wanted); True when it did."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            return False
        status = pool.status()
        if (status.get("tasks_done", 0) or status["busy"] or status["queued"]
                or any(w["sessions"] for w in status["workers"])):
            return False
        del _pools[name]
    pool.shutdown(wait=False, cancel_futures=False)
    return True


def shutdown_all(wait: bool = True) -> None:
    """Shut down every pool of this process, cancelling what runs (also run at exit)."""
    with _lock:
        _pools.clear()
    shutdown_live_pools(wait)


def _backend_pool(name: str) -> Any:
    """The Dask pool for ``name`` when that backend is active (it is only ever active once
    ``dspex_lab.distributed`` was imported, so this costs nothing otherwise)."""
    distributed = sys.modules.get("dspex_lab.distributed")
    return None if distributed is None else distributed.backend_pool(name)


def _check_options(name: str, options: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"Pool names must be non-empty strings, not {name!r}.")
    if not isinstance(options, dict):
        raise ConfigurationError(f"Options of pool {name!r} must be a dict, not "
                                 f"{type(options).__name__}.")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigurationError(f"Unknown option(s) {', '.join(map(repr, unknown))} for pool "
                                 f"{name!r}; valid options: {', '.join(_OPTIONS)}.")
    WorkerPool(name=name, **{**_config.get(name, {}), **options}).shutdown()  # validates


def _apply(pool: WorkerPool, options: dict[str, Any]) -> None:
    for key, value in options.items():
        if key == "size":
            pool.resize((os.cpu_count() or 1) if value is None else value)
        else:
            setattr(pool, key, value)

