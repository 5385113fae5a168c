"""``%dspex_telemetry``: the live telemetry dashboard, or a summary table without it.

The dashboard is ``dspex_lab.widgets.TelemetryDashboard`` (an ipywidget); when that module is
not available, or with ``--summary``, the answer is ``telemetry.summary()`` as a table.

    >>> open_telemetry(summary=True)        # counts, p50/p95 latency, tokens, cost per kind
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display import Note

__all__ = ["open_telemetry"]


def _dashboard() -> Any:
    try:
        from dspex_lab.widgets import TelemetryDashboard
    except ImportError:
        return None
    return TelemetryDashboard


def open_telemetry(summary: bool = False, kind: str | None = None) -> Any:
    """The dashboard widget, or (``summary=True`` or no widget) a summary of the events of
    ``kind`` (default: every kind)."""
    from dspex_lab import telemetry

    dashboard = None if summary else _dashboard()
    if dashboard is not None:
        return dashboard()
    table = telemetry.summary(kind)
    reason = "" if summary else ("The live dashboard is unavailable (dspex_lab.widgets is "
                                 "not installed). ")
    if table.empty:
        return Note(f"{reason}No telemetry events yet; make a call first.", kind="telemetry")
    return Note(f"{reason}Telemetry summary per event kind "
                "(dspex_lab.telemetry.events() has every event):", table, kind="telemetry")
