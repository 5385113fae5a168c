"""The lab panel, the dashboard and ``df.attrs["usage"]`` count the same failed rows after a
run with a failed row, an invalid row and a cancel: rows that never ran are not errors."""

import concurrent.futures as cf
import threading

import pandas as pd
import pytest

import dspex_lab.batch as batch
from dspex_lab import telemetry
from dspex_lab.cli import demo_exit_code
from dspex_lab.labext import TelemetryAggregator
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server
from dspex_lab.widgets.dashboard_stats import DashboardStats

RETRY = batch.RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.01)


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(server):
        yield


def test_panel_dashboard_and_usage_agree_on_errors(server):
    questions = (["[[fail:500]] What is 1 + 1?", None]
                 + [f"What is {i} + 2?" for i in range(40)])
    cancel = threading.Event()

    def on_part(frame):  # cancel once a part with LM calls has come back
        if frame["status"].isin(["ok", "error"]).any():
            cancel.set()

    telemetry.clear()
    with cf.ThreadPoolExecutor(1) as pool:
        out = batch.run("question -> answer", pd.DataFrame({"question": questions}),
                        lm=make_spec(server, EMBEDDED_MODEL), pool=pool, retry=RETRY,
                        progress=False, cache=False, chunk_size=5, concurrency=1,
                        cancel=cancel, on_part=on_part)
    usage = out.attrs["usage"]
    assert usage["status"] == "cancelled"
    assert out["status"].iloc[:2].tolist() == ["error", "invalid"]
    assert usage["not_run"] > 0 and usage["errors"] == 2  # error + invalid, not the not_run

    events = telemetry.get_bus().snapshot(None)
    panel, dashboard = TelemetryAggregator(), DashboardStats()
    panel.feed_all(events)
    dashboard.add_many(events)
    board = dashboard.totals()
    assert panel.totals()["errors"] == usage["errors"] == board["errors"] + board["invalid"]
    assert board["not_run"] == usage["not_run"]
    assert panel.totals()["calls"] == board["calls"] == usage["ok"] + 1  # + the failed row
    assert demo_exit_code(out) == 0  # some rows were answered


def test_the_cli_exit_code_reads_the_status():
    rows = pd.DataFrame({"status": ["error", "not_run"], "error": ["boom", "Cancelled"]})
    assert demo_exit_code(rows) == 1
    assert demo_exit_code(rows.assign(status=["error", "cached"])) == 0
