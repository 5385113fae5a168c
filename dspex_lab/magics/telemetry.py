"""``%dspex_telemetry``: the live telemetry dashboard, or a summary table without it.

The dashboard is ``dspex_lab.widgets.TelemetryDashboard`` (an ipywidget over the telemetry
bus), filled first with the events already buffered. Opening it again closes the previous one,
and ``%unload_ext dspex_lab`` closes it too, so no subscriber is left behind. Without the
widgets (or with ``--summary``) the answer is ``telemetry.summary()`` as a table.

    >>> open_telemetry(summary=True)        # counts, p50/p95 latency, tokens, cost per kind
"""

from __future__ import annotations

import contextlib
from typing import Any

from dspex_lab.display import Note

__all__ = ["close_dashboard", "open_telemetry"]

_OPENED: list[Any] = []


def _dashboard_factory() -> Any:
    try:
        from dspex_lab.widgets import TelemetryDashboard
    except ImportError:  # ipywidgets or plotly missing
        return None
    return TelemetryDashboard


def open_telemetry(summary: bool = False, kind: str | None = None) -> Any:
    """The dashboard widget, or (``summary=True`` or no widget) a summary of the events of
    ``kind`` (default: every kind)."""
    from dspex_lab import telemetry

    factory = None if summary else _dashboard_factory()
    if factory is not None:
        close_dashboard()
        board = factory(backfill=True)
        _OPENED.append(board)
        return board
    table = telemetry.summary(kind)
    reason = "" if summary else ("The live dashboard is unavailable (dspex_lab.widgets could "
                                 "not be imported). ")
    if table.empty:
        return Note(f"{reason}No telemetry events yet; make a call first.", kind="telemetry")
    return Note(f"{reason}Telemetry summary per event kind "
                "(dspex_lab.telemetry.events() has every event):", table, kind="telemetry")


def close_dashboard() -> None:
    """Close the dashboard ``open_telemetry`` opened (unsubscribes it from telemetry)."""
    while _OPENED:
        board = _OPENED.pop()
        with contextlib.suppress(Exception):  # already closed, or the kernel's comm is gone
            board.close()
