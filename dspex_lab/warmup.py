"""Warm start: ``%load_ext dspex_lab`` starts the ``general`` pool and imports DSPy in the
background, so the first ``%%dspex`` answer a few seconds later takes a fraction of a second
instead of ~3.5 s (starting the workers and ``import dspy`` in the kernel).

``%load_ext`` itself does not wait: one daemon thread does the work and nothing is configured
by it, so settings made after loading apply as usual -- the LM (``configure(lm=...)``), pool
sizes and limits (``configure_pools``, in place), a new pool environment (the pool restarts).
Failures are logged, never raised: the first real call reports them. Opt out with
``c.Dspex.warm_pool = False`` in ``ipython_config.py`` or ``DSPEX_WARM_POOL=0``; setting
``%config Dspex.warm_pool = False`` after loading shuts the warmed pool down again if it has
not run a task yet.

    >>> start()                      # what %load_ext does
    >>> wait(timeout=30), state()
    (True, 'warm')
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

__all__ = ["enabled", "release", "seconds", "start", "state", "wait"]

log = logging.getLogger("dspex_lab.warmup")

POOL = "general"
"""The pool single calls and batch runs use first."""

_lock = threading.Lock()
_thread: threading.Thread | None = None
_done = threading.Event()
_state = "idle"  # idle | warming | warm | failed | released
_seconds: float | None = None


def enabled() -> bool:
    """False when ``DSPEX_WARM_POOL`` is ``0``/``false``/``no``/``off``."""
    value = os.environ.get("DSPEX_WARM_POOL", "1").strip().lower()
    return value not in ("0", "false", "no", "off", "")


def start() -> None:
    """Warm up in a background thread (once per process; does nothing when a Dask backend is
    active, in a worker process, or when ``DSPEX_WARM_POOL=0``)."""
    global _thread, _state
    if not enabled() or _remote_backend():
        return
    with _lock:
        if _thread is not None:
            return
        _state = "warming"
        _thread = threading.Thread(target=_warm, name="dspex-warmup", daemon=True)
        _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Wait for the warm-up to end; True when it ended (warm or failed)."""
    return _thread is not None and _done.wait(timeout)


def state() -> str:
    """``idle`` (not started), ``warming``, ``warm``, ``failed`` or ``released``."""
    return _state


def seconds() -> float | None:
    """How long the warm-up took (None until it is over)."""
    return _seconds


def release() -> bool:
    """Shut the warmed pool down if it never ran a task (``Dspex.warm_pool = False`` after
    loading); True when it did."""
    global _state
    from dspex_lab.workers.registry import release_if_unused

    released = release_if_unused(POOL)
    if released:
        _state = "released"
    return released


def _warm() -> None:
    global _state, _seconds
    begin = time.perf_counter()
    try:
        from dspex_lab.workers.registry import get_pool

        pool = get_pool(POOL)
        ready: list[bool] = []
        starter = threading.Thread(target=lambda: ready.append(pool.ready(timeout=120)),
                                   name="dspex-warmup-pool", daemon=True)
        starter.start()  # the workers import DSPy in their zygote, the kernel meanwhile here
        import dspy  # noqa: F401  (the kernel builds dspy.Prediction objects and reads settings)

        import dspex_lab.calls
        import dspex_lab.router  # noqa: F401

        starter.join()
        _state = "warm" if ready == [True] else "failed"
    except Exception:  # the first real call reports what is wrong
        _state = "failed"
        log.debug("dspex_lab: warming the pool failed", exc_info=True)
    finally:
        _seconds = time.perf_counter() - begin
        _done.set()


def _remote_backend() -> bool:
    distributed = sys.modules.get("dspex_lab.distributed")
    return distributed is not None and distributed.backend_pool(POOL) is not None
