"""Plotly figures for the telemetry dashboard: one ``FigureWidget`` of seven panels, and the
function that writes a ``DashboardStats`` into it in one batched update.

Panels: latency histogram (log-scaled, p50/p95 marked) ·
throughput (calls/s and errors/s) · tokens (running total) ·
cost (running total, USD) · errors by cause · calls by route · tasks per pool worker (coloured
by state). Only this module (and the dashboard) imports plotly.

    >>> fig = make_figure()
    >>> update_figure(fig, stats)                 # one batched message to the frontend
"""

from __future__ import annotations

from typing import Any

from dspex_lab.widgets.dashboard_stats import DashboardStats
from dspex_lab.widgets.triage import CAUSES

__all__ = ["TRACES", "make_figure", "update_figure"]

TRACES = ("latency", "calls_per_s", "errors_per_s", "tokens", "cost", "errors", "routes",
          "workers")
"""Trace names, in the figure's trace order."""

_STATE_COLOURS = {"idle": "#2ca02c", "busy": "#ff7f0e", "starting": "#1f77b4",
                  "retiring": "#9467bd"}
_FONT = "#8a8a8a"
_GRID = "rgba(128,128,128,0.25)"
_TITLES = ("latency (ms, log scale)",
           "throughput (per s)", "tokens", "cost (USD)", "errors by cause",
           "calls by route", "pool workers (tasks done)")


def make_figure(height: int = 640) -> Any:
    """An empty dashboard ``FigureWidget`` (traces in ``TRACES`` order)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    base = make_subplots(rows=3, cols=3, subplot_titles=_TITLES, vertical_spacing=0.12,
                         horizontal_spacing=0.08,
                         specs=[[{}, {}, {}], [{}, {}, {}], [{"colspan": 3}, None, None]])
    fig = go.FigureWidget(base)
    fig.add_trace(go.Bar(name="latency", x=[], y=[], marker_color="#1f77b4"), 1, 1)
    fig.add_trace(go.Scatter(name="calls/s", x=[], y=[], mode="lines",
                             line={"color": "#1f77b4"}), 1, 2)
    fig.add_trace(go.Scatter(name="errors/s", x=[], y=[], mode="lines",
                             line={"color": "#d62728"}), 1, 2)
    fig.add_trace(go.Scatter(name="tokens", x=[], y=[], mode="lines",
                             line={"color": "#9467bd"}), 1, 3)
    fig.add_trace(go.Scatter(name="cost", x=[], y=[], mode="lines",
                             line={"color": "#8c564b"}), 2, 1)
    fig.add_trace(go.Bar(name="errors", x=[], y=[], marker_color="#d62728"), 2, 2)
    fig.add_trace(go.Bar(name="routes", x=[], y=[], marker_color="#17becf"), 2, 3)
    fig.add_trace(go.Bar(name="workers", x=[], y=[], orientation="h"), 3, 1)
    # transparent backgrounds and a mid-grey font: readable in JupyterLab's light and dark
    # themes alike; no fixed width, so the figure fills the notebook's width
    fig.update_layout(height=height, autosize=True, showlegend=False, bargap=0.05,
                      margin={"l": 40, "r": 10, "t": 40, "b": 30}, template="none",
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                      font={"color": _FONT})
    fig.update_xaxes(gridcolor=_GRID, zerolinecolor=_GRID)
    fig.update_yaxes(gridcolor=_GRID, zerolinecolor=_GRID)
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="s", row=1, col=2)
    fig.update_xaxes(title_text="s", row=1, col=3)
    fig.update_xaxes(title_text="s", row=2, col=1)
    return fig


def update_figure(fig: Any, stats: DashboardStats) -> None:
    """Write ``stats`` into ``fig`` (from ``make_figure``) in one ``batch_update``."""
    centres, counts = stats.latency_log_histogram()
    series = stats.series()
    causes = [c for c in CAUSES if stats.causes.get(c)]
    routes = sorted(stats.routes)
    workers = stats.workers
    p50, p95 = stats.percentiles()
    with fig.batch_update():
        t = fig.data
        t[0].update(x=centres, y=counts)
        t[1].update(x=series["t"], y=series["calls"])
        t[2].update(x=series["t"], y=series["errors"])
        t[3].update(x=series["t"], y=series["tokens"])
        t[4].update(x=series["t"], y=series["cost"])
        t[5].update(x=[CAUSES[c] for c in causes], y=[stats.causes[c] for c in causes])
        t[6].update(x=routes, y=[stats.routes[r] for r in routes])
        t[7].update(y=[r["worker"] for r in workers], x=[r["tasks"] for r in workers],
                    marker_color=[_STATE_COLOURS.get(str(r["state"]), "#7f7f7f")
                                  for r in workers],
                    hovertext=[f"{r['state']}, rss {r['rss_mb'] or '?'} MB" for r in workers])
        if p50 is not None:
            fig.layout.annotations[0].text = f"latency (ms, log) · p50 {p50:,.0f} · p95 {p95:,.0f}"
            fig.layout.shapes = [
                {"type": "line", "xref": "x", "yref": "y domain", "x0": v, "x1": v, "y0": 0,
                 "y1": 1, "line": {"color": colour, "dash": "dot", "width": 1.5}}
                for v, colour in ((max(p50, 0.1), "#2ca02c"), (max(p95, 0.1), "#ff7f0e"))]
