"""``%dspex_pool [NAME]``: the status table of the worker pools (or of one).

    >>> pool_table().statuses[0]["name"]
    'general'
"""

from __future__ import annotations

from dspex_lab.display import PoolStatusView
from dspex_lab.errors import ConfigurationError

__all__ = ["pool_table"]


def pool_table(name: str | None = None) -> PoolStatusView:
    """The status of every pool started in this kernel, or of the pool ``name``."""
    from dspex_lab.workers import pool_status

    statuses = pool_status()
    if name:
        statuses = [s for s in statuses if s.get("name") == name]
        if not statuses:
            running = ", ".join(s.get("name", "?") for s in pool_status()) or "none"
            raise ConfigurationError(f"No pool named {name!r} is running (running: "
                                     f"{running}); pools start on first use.")
    return PoolStatusView(statuses)
