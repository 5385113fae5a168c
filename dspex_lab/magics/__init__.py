"""The IPython extension: ``%load_ext dspex_lab`` (or ``c.InteractiveShellApp.extensions =
["dspex_lab"]`` in ``ipython_config.py``).

Loading registers, once each: the magics (``%%dspex``, ``%dspex``, ``%dspex_lm``,
``%dspex_pool``, ``%dspex_history``, ``%dspex_telemetry``, ``%dspex_cache``), the ``Dspex``
configurable (for ``%config Dspex.lm = ...``), the HTML formatter for ``dspy.Prediction``, the
``VAR << %dspex`` input transformer and the JupyterLab panel's comm target. Unloading removes
all of them and closes the telemetry dashboard ``%dspex_telemetry`` opened; ``Dspex`` settings
survive an unload/reload. Nothing here imports DSPy; loading starts the ``general`` pool and
imports DSPy in a background thread (``dspex_lab.warmup``; ``Dspex.warm_pool`` turns it off).

    >>> ip = get_ipython()
    >>> load_ipython_extension(ip); load_ipython_extension(ip)      # idempotent
    >>> unload_ipython_extension(ip)
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["last_error", "load_ipython_extension", "unload_ipython_extension"]

log = logging.getLogger("dspex_lab.magics")


def last_error() -> BaseException | None:
    """The full exception behind the last ``UsageError`` a dspex magic showed."""
    from dspex_lab.magics.magic import last_error as last

    return last()


def load_ipython_extension(ipython: Any) -> None:
    """Register everything with ``ipython`` (safe to call again)."""
    from dspex_lab import display
    from dspex_lab.config import Dspex
    from dspex_lab.magics import transform
    from dspex_lab.magics.magic import DspexMagics

    config = Dspex.instance(parent=ipython) if not Dspex.initialized() else Dspex.instance()
    if config not in ipython.configurables:
        ipython.configurables.append(config)
    ipython.register_magics(DspexMagics)
    if config.warm_pool:
        from dspex_lab import warmup

        warmup.start()  # in the background: the first answer is quick, %load_ext stays instant
    display.register(ipython)
    transform.install(ipython)
    try:
        from dspex_lab.labext import register_comm_target

        register_comm_target(ipython)
    except Exception:  # the panel is optional; the magics must load anyway
        log.warning("dspex_lab: the JupyterLab panel comm could not be registered",
                    exc_info=True)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what ``load_ipython_extension`` registered."""
    from dspex_lab import display
    from dspex_lab.config import Dspex
    from dspex_lab.magics import transform
    from dspex_lab.magics.magic import MAGIC_NAMES, DspexMagics
    from dspex_lab.magics.telemetry import close_dashboard

    manager = ipython.magics_manager
    for kind, names in MAGIC_NAMES.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(DspexMagics.__name__, None)
    if Dspex.initialized():
        config = Dspex.instance()
        while config in ipython.configurables:
            ipython.configurables.remove(config)
    display.unregister(ipython)
    transform.uninstall(ipython)
    close_dashboard()
    try:
        from dspex_lab.labext import unregister_comm_target

        unregister_comm_target(ipython)
    except Exception:
        log.debug("dspex_lab: unregistering the panel comm failed", exc_info=True)
