"""``TelemetryDashboard``: live plotly charts of every LM call, without blocking the kernel.

The dashboard subscribes to ``dspex_lab.telemetry``; its subscriber only appends the event to
a queue (cheap: the emitting thread never waits on plotly). A daemon thread wakes every
``interval`` seconds (0.5 s by default), folds the queued events into a ``DashboardStats``,
polls ``pool_status()`` about once a second, and, when something changed, writes the figure
in one ``batch_update`` — so the frontend gets at most two messages a second however fast
events arrive, and keeps updating while a cell runs a batch.

    >>> dash = TelemetryDashboard()      # display it; charts fill in as calls happen
    >>> dash.stats.totals()              # the numbers behind the charts
    >>> dash.close()                     # unsubscribe and stop the thread

``dspex_lab.widgets.dashboard()`` returns one (closing the previous one it returned). That
name is also this module's: the module is callable (a documented ``ModuleType`` subclass), so
``dspex_lab.widgets.dashboard()`` works whether or not the module was imported first.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections import deque
from typing import Any

import ipywidgets as w

from dspex_lab import telemetry
from dspex_lab.widgets._ui import Ticker
from dspex_lab.widgets.dashboard_stats import DashboardStats
from dspex_lab.widgets.figures import make_figure, update_figure

__all__ = ["TelemetryDashboard", "dashboard"]

_POOLS_EVERY_S = 1.0


class TelemetryDashboard(w.VBox):
    """Live telemetry charts; see the module docstring.

    ``interval``: seconds between refreshes; ``backfill``: first fold in the events already in
    the telemetry buffer; ``pools``: show pool workers (from ``pool_status()``).
    """

    _unsubscribe = None  # set once subscribed; close() works even if __init__ failed early

    def __init__(self, *, interval: float = 0.5, backfill: bool = False, pools: bool = True,
                 height: int = 640) -> None:
        self.stats = DashboardStats()
        self.figure = make_figure(height)
        self.header = w.HTML()
        self.pools = pools
        self.updates = 0  # figure refreshes sent so far
        self.busy_s = 0.0  # CPU time spent folding and redrawing (thread time)
        self._queue: deque[telemetry.Event] = deque()
        self._lock = threading.Lock()
        self._pools_at = 0.0
        if backfill:
            self._queue.extend(telemetry.get_bus().snapshot())
        self._unsubscribe = telemetry.subscribe(self._queue.append)
        super().__init__([self.header, self.figure])
        self.add_class("dspex-telemetry-dashboard")
        self.flush()
        self._ticker = Ticker(interval, self.flush, name="dspex-dashboard").start()

    def flush(self) -> bool:
        """Fold the queued events in and redraw if anything changed (the thread calls this
        every ``interval``; call it yourself to refresh now). True when it redrew."""
        with self._lock:
            started = time.thread_time()
            events = []
            while self._queue:
                events.append(self._queue.popleft())
            changed = self.stats.add_many(events)
            now = time.monotonic()
            if self.pools and now - self._pools_at >= _POOLS_EVERY_S:
                self._pools_at = now
                changed = self.stats.set_workers(_pool_status()) or changed
            if changed or not self.updates:
                update_figure(self.figure, self.stats)
                self.header.value = _header(self.stats)
                self.updates += 1
            self.busy_s += time.thread_time() - started
        return changed

    @property
    def closed(self) -> bool:
        return self._unsubscribe is None

    def close(self) -> None:
        """Unsubscribe from telemetry, stop the refresh thread and close the widgets."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._ticker.stop()
        self.figure.close()
        super().close()


def _pool_status() -> list[dict[str, Any]]:
    """``pool_status()`` if the pools module is loaded (importing it starts nothing, but a
    kernel that never used a pool has none to show)."""
    registry = sys.modules.get("dspex_lab.workers.registry")
    if registry is None:
        return []
    try:
        return list(registry.pool_status())
    except Exception:  # a pool shutting down must not break the dashboard
        return []


def _header(stats: DashboardStats) -> str:
    t = stats.totals()
    p50 = "–" if t["p50_ms"] is None else f"{t['p50_ms']:,.0f} ms"
    p95 = "–" if t["p95_ms"] is None else f"{t['p95_ms']:,.0f} ms"
    restarts = sum(n for k, n in stats.worker_events.items() if k in ("died", "restarted"))
    items = [("calls", f"{t['calls']:,}"), ("errors", f"{t['errors']:,}"),
             ("cached", f"{t['cached']:,}"), ("not run", f"{t['not_run']:,}"),
             ("invalid", f"{t['invalid']:,}"),
             ("calls/s", f"{t['calls_per_s']:,.1f}"),
             ("p50", p50), ("p95", p95), ("tokens", f"{t['tokens']:,}"),
             ("cost", f"${t['cost']:,.4f}"), ("workers", str(len(stats.workers))),
             ("worker restarts", f"{restarts:,}")]
    cells = "".join(f"<div style='padding:0 10px'><div style='font-size:11px;color:#666'>{k}"
                    f"</div><div class='dspex-total' data-key='{k}' style='font-size:16px;"
                    f"font-weight:600'>{v}</div></div>" for k, v in items)
    return f"<div style='display:flex;flex-wrap:wrap'>{cells}</div>"


_CURRENT: list[TelemetryDashboard] = []


def dashboard(**options: Any) -> TelemetryDashboard:
    """A new ``TelemetryDashboard`` (the one this function returned before is closed, so
    re-running the cell does not pile up subscribers).

    >>> import dspex_lab.widgets as dw
    >>> dw.dashboard()
    """
    while _CURRENT:
        _CURRENT.pop().close()
    dash = TelemetryDashboard(**options)
    _CURRENT.append(dash)
    return dash


class _CallableModule(types.ModuleType):
    """Makes ``dspex_lab.widgets.dashboard(...)`` call ``dashboard(...)`` (the package
    attribute of that name is this module once it is imported)."""

    def __call__(self, **options: Any) -> TelemetryDashboard:
        return dashboard(**options)


sys.modules[__name__].__class__ = _CallableModule
