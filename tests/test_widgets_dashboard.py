"""DashboardStats (the event math), the figure, and TelemetryDashboard's thread: bounded
refreshes, live updates while a batch runs, and a clean close."""

import concurrent.futures as cf
import threading
import time

import numpy as np
import pandas as pd
import pytest

import dspex_lab.batch as batch
import dspex_lab.widgets as dw
from dspex_lab import telemetry
from dspex_lab.cache import ResultCache, set_cache
from dspex_lab.lm.config import EMBEDDED_MODEL, LMSpec
from dspex_lab.telemetry import Event
from dspex_lab.widgets.dashboard import TelemetryDashboard
from dspex_lab.widgets.dashboard_stats import DashboardStats
from dspex_lab.widgets.figures import TRACES, make_figure, update_figure


def call(ts, latency=10.0, p=10, c=5, cost=0.001, error=None, kind="lm.call", **extra):
    return Event(kind, ts, {"latency_ms": latency, "prompt_tokens": p, "completion_tokens": c,
                            "cost": cost, "error": error, **extra})


def test_totals_percentiles_and_histogram():
    stats = DashboardStats(latency_bins=10)
    latencies = [float(x) for x in range(1, 101)]
    assert stats.add_many(call(1000.0 + i / 100, latency=v) for i, v in enumerate(latencies))
    t = stats.totals()
    assert (t["calls"], t["errors"], t["tokens"]) == (100, 0, 1500)
    assert t["cost"] == pytest.approx(0.1)
    assert (t["p50_ms"], t["p95_ms"]) == tuple(np.percentile(latencies, [50, 95]))
    centres, counts, width = stats.latency_histogram()
    assert len(centres) == 10 and sum(counts) == 100 and width == pytest.approx(9.9)
    assert centres[0] == pytest.approx(1 + 9.9 / 2)


def test_which_events_count_as_calls():
    stats = DashboardStats()
    assert not stats.add(Event("call", 1.0, {"route": "native", "cached": False}))  # inline
    assert stats.add(Event("call", 1.0, {"route": "native", "cached": True, "latency_ms": 0}))
    assert stats.add(Event("call", 1.0, {"route": "pool", "latency_ms": 30.0}))
    assert stats.add(call(1.0, route="pool"))
    assert stats.add(call(1.0))  # an LM called directly by DSPy
    assert not stats.add(Event("run.progress", 1.0, {"rows_done": 3}))
    assert stats.add(Event("pool.worker_restarted", 1.0, {}))
    assert stats.calls == 4 and stats.cached == 1
    assert dict(stats.routes) == {"native": 1, "pool": 2, "kernel": 1}
    assert list(stats.latencies) == [30.0, 10.0, 10.0]  # cache hits say nothing of latency
    assert stats.worker_events == {"restarted": 1}


def test_errors_by_cause_and_per_second_series_with_gaps():
    stats = DashboardStats()
    stats.add(call(50.2))
    stats.add(call(50.7, error="LMRateLimitError: 429"))
    stats.add(call(53.1, p=100, c=0, cost=0.5, error="TimeoutError: slow"))
    assert dict(stats.causes) == {"rate_limit": 1, "timeout": 1} and stats.errors == 2
    s = stats.series()
    assert s["t"] == [0.0, 1.0, 2.0] and s["calls"] == [2, 0, 1]
    assert s["errors"] == [1, 0, 1]
    assert s["tokens"] == [30, 30, 130] and s["cost"] == pytest.approx([0.002, 0.002, 0.502])
    assert stats.recent_rate(seconds=10) == pytest.approx(3 / 3)


def test_rows_that_made_no_call_are_only_counted_as_skipped():
    stats = DashboardStats()
    stats.add(call(1.0, latency=0.0, p=0, c=0, cost=0.0, status="not_run",
                   error="Interrupted: the run was interrupted before this row ran."))
    stats.add(call(1.0, latency=0.0, p=0, c=0, cost=0.0, status="invalid",
                   error="ValidationError: 1 problem with the inputs: - q: expected int"))
    stats.add(call(2.0, latency=50.0))
    t = stats.totals()
    assert (t["calls"], t["errors"], t["skipped"], t["p50_ms"]) == (1, 0, 2, 50.0)
    assert dict(stats.causes) == {"not_run": 1, "input": 1}
    assert stats.series()["calls"] == [1]


def test_batch_calls_and_skipped_rows_fold_like_single_events():
    import pyarrow as pa

    table = pa.table({"row": [0, 1, 2, 3], "latency_ms": [10.0, 20.0, 30.0, 0.0],
                      "prompt_tokens": [5, 5, 5, 0], "completion_tokens": [1, 1, 1, 0],
                      "cost": [0.1, 0.1, 0.1, 0.0],
                      "error": [None, "LMRateLimitError: 429", None, None],
                      "cached": [False, False, False, True]})
    stats = DashboardStats()
    assert stats.add(Event(telemetry.CALLS, 5.0, {"route": "pool", "calls": table}))
    assert stats.add(Event("run.skipped", 6.0, {"rows": 7, "reason": "not_run"}))
    assert stats.add(Event("run.skipped", 6.0, {"rows": 2, "reason": "input"}))
    t = stats.totals()
    assert (t["calls"], t["errors"], t["cached"], t["skipped"], t["tokens"]) == (4, 1, 1, 9, 18)
    assert t["cost"] == pytest.approx(0.3) and t["p50_ms"] == 20.0  # cached latency left out
    assert dict(stats.causes) == {"rate_limit": 1, "not_run": 7, "input": 2}
    assert dict(stats.routes) == {"pool": 4} and stats.series()["calls"] == [4]


def test_old_seconds_are_trimmed_but_running_totals_kept():
    stats = DashboardStats(window_s=5)
    for second in range(20):
        stats.add(call(float(second)))
    s = stats.series()
    assert s["t"] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert s["tokens"][-1] == stats.totals()["tokens"] == 20 * 15


def test_worker_rows_change_detection():
    stats = DashboardStats()
    pools = [{"name": "general", "workers": [{"pid": 1, "state": "idle", "tasks": 3},
                                             {"pid": 2, "state": "busy", "tasks": 1}]}]
    assert stats.set_workers(pools)
    assert not stats.set_workers(pools)
    pools[0]["workers"][1]["tasks"] = 2
    assert stats.set_workers(pools)
    assert [r["worker"] for r in stats.workers] == ["general/1", "general/2"]


def test_figure_gets_every_panel():
    stats = DashboardStats()
    for i in range(20):
        stats.add(call(100 + i / 4, latency=10 + i, error="TimeoutError: x" if i == 3 else None,
                       route="pool"))
    stats.set_workers([{"name": "general", "workers": [{"pid": 7, "state": "busy",
                                                        "tasks": 20}]}])
    fig = make_figure()
    assert [t.name for t in fig.data] == ["latency", "calls/s", "errors/s", "tokens", "cost",
                                          "errors", "routes", "workers"] and len(TRACES) == 8
    update_figure(fig, stats)
    assert sum(fig.data[0].y) == 20
    assert list(fig.data[1].y) == [4, 4, 4, 4, 4] and sum(fig.data[2].y) == 1
    assert fig.data[3].y[-1] == 300 and fig.data[5].x == ("timeouts",)
    assert fig.data[6].x == ("pool",) and fig.data[7].y == ("general/7",)
    assert fig.data[7].marker.color == ("#ff7f0e",)
    assert "p50" in fig.layout.annotations[0].text


# -- the widget -----------------------------------------------------------------------------------

def subscribers():
    return len(telemetry.get_bus()._subscribers)


def test_dashboard_batches_events_and_closes_cleanly():
    before, threads = subscribers(), threading.active_count()
    dash = TelemetryDashboard(interval=60, pools=False)  # the test drives flush() itself
    assert subscribers() == before + 1 and dash.updates == 1
    for i in range(50):
        telemetry.emit("lm.call", latency_ms=5.0 + i, prompt_tokens=2, completion_tokens=1,
                       cost=0.0, error=None, route="pool")
    assert dash.stats.calls == 0  # emitting only queued them
    assert dash.flush() and dash.stats.calls == 50 and dash.updates == 2
    assert sum(dash.figure.data[0].y) == 50
    assert "data-key='calls'" in dash.header.value and ">50<" in dash.header.value
    assert not dash.flush() and dash.updates == 2  # nothing new: no redraw
    dash.close()
    assert dash.closed and subscribers() == before
    assert threading.active_count() <= threads
    telemetry.emit("lm.call", latency_ms=1.0)
    assert dash.stats.calls == 50


def test_dashboard_refresh_rate_is_bounded():
    dash = TelemetryDashboard(interval=0.2)
    try:
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            for _ in range(200):
                telemetry.emit("lm.call", latency_ms=1.0, prompt_tokens=1, completion_tokens=1,
                               cost=0.0, error=None)
            time.sleep(0.01)
        time.sleep(0.3)
        elapsed = time.monotonic() - start
        assert dash.stats.calls >= 2000
        assert 2 <= dash.updates <= elapsed / 0.2 + 2
    finally:
        dash.close()


def test_dashboard_backfill_and_the_convenience_function():
    telemetry.emit("lm.call", latency_ms=3.0, prompt_tokens=1, completion_tokens=1, cost=0.0,
                   error=None)
    first = dw.dashboard(interval=60, backfill=True)
    assert first.stats.calls >= 1
    second = dw.dashboard(interval=60)
    assert first.closed and not second.closed and second.stats.calls == 0
    second.close()


def test_dashboard_follows_a_batch_run_in_another_thread():
    from dspex_lab.testing import running_server

    set_cache(ResultCache(path=None))
    dash = TelemetryDashboard(interval=0.1, pools=False)
    try:
        with running_server() as server, cf.ThreadPoolExecutor(2) as pool:
            spec = LMSpec(EMBEDDED_MODEL, {"api_base": server.url, "api_key": "x"})
            data = pd.DataFrame({"question": [f"What is {i} + 2?" for i in range(40)]})
            out = batch.run("question -> answer", data, lm=spec, pool=pool, progress=False,
                            chunk_size=8)
        time.sleep(0.3)
        assert dash.stats.calls == 40 and dash.stats.routes == {"pool": 40}
        assert dash.stats.totals()["tokens"] == int(out["prompt_tokens"].sum()
                                                    + out["completion_tokens"].sum())
        assert sum(dash.figure.data[0].y) == 40
    finally:
        dash.close()
        set_cache(None)


def test_rows_of_a_calls_table_are_counted_by_their_status():
    import pyarrow as pa

    table = pa.table({"row": [0, 1, 2], "latency_ms": [10.0, 0.0, 30.0],
                      "prompt_tokens": [5, 0, 5], "completion_tokens": [1, 0, 1],
                      "cost": [0.1, 0.0, 0.1],
                      "error": [None, "CircuitOpen: the LM kept failing", "the provider said no"],
                      "cached": [False, False, False],
                      "status": ["ok", "not_run", "error"],
                      "error_type": [None, "CircuitOpen", "RateLimitError"]})
    stats = DashboardStats()
    assert stats.add(Event(telemetry.CALLS, 5.0, {"route": "pool", "calls": table}))
    t = stats.totals()
    assert (t["calls"], t["errors"], t["skipped"], t["tokens"]) == (2, 1, 1, 12)
    assert (t["not_run"], t["invalid"]) == (1, 0)
    assert dict(stats.causes) == {"not_run": 1, "rate_limit": 1}


def test_one_60_s_outlier_does_not_stretch_the_log_scaled_latency_panel():
    stats = DashboardStats(latency_bins=20)
    latencies = [20.0 + i % 30 for i in range(99)] + [60_000.0]
    stats.add_many(call(1000.0 + i / 100, latency=v) for i, v in enumerate(latencies))
    centres, counts = stats.latency_log_histogram()
    assert sum(counts) == 100 and counts[-1] == 1
    assert sum(1 for c, n in zip(centres, counts, strict=True) if n and c < 100) >= 3  # spread
    fig = make_figure()
    update_figure(fig, stats)
    assert fig.layout.xaxis.type == "log"
    assert [round(s.x0) for s in fig.layout.shapes] == [round(v) for v in stats.percentiles()]
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)" and fig.layout.width is None
