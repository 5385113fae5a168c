"""The pool status table (``%dspex_pool``): one row per pool, workers in a fold-out.

    >>> PoolStatusView(dspex_lab.pool_status())
    pool     state    size alive busy queued done failed restarts
    general  running     2     2    0      0    8      0        0
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display._html import box, esc, table

__all__ = ["COLUMNS", "PoolStatusView"]

COLUMNS = (("pool", "name"), ("state", "state"), ("size", "size"), ("alive", "alive"),
           ("busy", "busy"), ("queued", "queued"), ("done", "tasks_done"),
           ("failed", "failed"), ("restarts", "restarts"))
_WORKER_COLUMNS = ("pid", "state", "tasks", "sessions", "rss_mb", "running")


def _cell(status: dict[str, Any], key: str) -> Any:
    value = status.get(key)
    return "" if value is None else value


class PoolStatusView:
    """A table of ``pool_status()`` rows (each a ``WorkerPool.status()`` dict)."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = list(statuses)

    def rows(self) -> list[list[Any]]:
        """One row of cells per pool, in ``COLUMNS`` order."""
        return [[_cell(s, key) for _, key in COLUMNS] for s in self.statuses]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        if not self.statuses:
            return box("pools", "<i>No pool is running yet; the first call starts "
                       "<code>general</code>.</i>")
        body = [table(self.rows(), header=[h for h, _ in COLUMNS])]
        for status in self.statuses:
            workers = status.get("workers") or []
            broken = status.get("broken")
            if broken:
                body.append(f"<div><b>{esc(status.get('name'))}</b> is broken: "
                            f"{esc(broken)}</div>")
            if workers:
                rows = [[_cell(w, k) for k in _WORKER_COLUMNS] for w in workers]
                body.append(f"<details><summary>{esc(status.get('name'))}: "
                            f"{len(workers)} worker(s)</summary>"
                            f"{table(rows, header=_WORKER_COLUMNS)}</details>")
        return box("pools", "".join(body), title="Worker pools")

    def __repr__(self) -> str:
        if not self.statuses:
            return "No pool is running yet; the first call starts 'general'."
        header = [h for h, _ in COLUMNS]
        rows = [header, *[[str(c) for c in r] for r in self.rows()]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return "\n".join("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                         .rstrip() for r in rows)
