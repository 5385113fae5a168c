"""The ``status`` / ``error_type`` / ``attempts`` columns of a run, its usage totals by status
and the progress bar's final state, against the embedded LM server (in-process thread pool)."""

import concurrent.futures as cf
import threading

import pandas as pd
import pyarrow as pa
import pytest

import dspex_lab.batch as batch
from dspex_lab.batch import status
from dspex_lab.batch.progress import Progress, final_state
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server

RETRY = batch.RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)


@pytest.fixture(scope="module")
def server():
    with running_server(retry_after_s=0.01) as srv:
        yield srv


@pytest.fixture(scope="module")
def pool():
    with cf.ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(server):
        yield


@pytest.fixture
def spec(server):
    return make_spec(server, EMBEDDED_MODEL)


def go(data, spec, pool, **kw):
    kw.setdefault("progress", False)
    return batch.run("question -> answer", data, lm=spec, pool=pool, retry=RETRY, **kw)


def test_every_row_says_how_it_ran_and_usage_counts_by_status(server, spec, pool):
    go([{"question": "What is 1 + 1?"}], spec, pool)  # row 0 is cached next time
    rows = [{"question": "What is 1 + 1?"}, {"question": "What is 2 + 2?"},
            {"question": "[[fail:500]] x"}, {"question": None}]
    out = go(rows, spec, pool)
    assert out["status"].tolist() == ["cached", "ok", "error", "invalid"]
    assert out["error_type"].tolist()[2:] == ["LMServerError", "ValidationError"]
    assert out["error_type"].isna().tolist()[:2] == [True, True]
    assert out["attempts"].tolist() == [0, 1, RETRY.max_retries + 1, 0]
    assert isinstance(out["status"].dtype, pd.StringDtype)
    assert str(out["attempts"].dtype) == "int64[pyarrow]"
    usage = out.attrs["usage"]
    assert {k: usage[k] for k in ("rows", "ok", "cached", "errors", "invalid", "not_run")} == {
        "rows": 4, "ok": 1, "cached": 1, "errors": 2, "invalid": 1, "not_run": 0}
    assert status.counts(out["status"]) == {"ok": 1, "error": 1, "invalid": 1, "not_run": 0,
                                            "cached": 1}
    assert status.failed_mask(out).tolist() == [False, False, True, True]


def test_rows_not_run_are_not_errors(server, spec, pool):
    data = [{"question": f"What is {i} + 1?"} for i in range(6)]
    with pytest.warns(UserWarning, match="3 rows were not run"):
        out = go(data, spec, pool, chunk_size=3, budget_usd=1e-9)  # stops after one chunk
    assert out["status"].tolist() == ["ok"] * 3 + ["not_run"] * 3
    assert out["error_type"].tolist()[3:] == ["BudgetExceeded"] * 3
    assert out["attempts"].tolist()[3:] == [0, 0, 0]
    usage = out.attrs["usage"]
    assert (usage["errors"], usage["not_run"], usage["ok"]) == (0, 3, 3)


def test_cancelled_rows_are_not_run_and_the_bar_says_cancelled(server, spec, pool):
    server.configure(latency_ms=20)
    cancel = threading.Event()
    data = pd.DataFrame({"question": [f"What is {i} + 3?" for i in range(200)]})

    def on_part(frame):
        cancel.set()

    out = go(data, spec, pool, chunk_size=10, concurrency=2, cancel=cancel, on_part=on_part)
    usage = out.attrs["usage"]
    assert usage["status"] == "cancelled" and usage["not_run"] > 0
    not_run = out[out["status"] == "not_run"]
    assert set(not_run["error_type"]) == {"Cancelled"} and (not_run["attempts"] == 0).all()
    assert usage["errors"] == 0 and usage["ok"] + usage["not_run"] == 200


def test_run_progress_events_count_finished_rows_only(server, spec, pool):
    from dspex_lab import telemetry

    telemetry.clear()
    data = [{"question": f"What is {i} + 5?"} for i in range(6)] + [{"question": None}]
    with pytest.warns(UserWarning):
        go(data, spec, pool, chunk_size=3, budget_usd=1e-9)
    last = telemetry.events("run.progress").iloc[-1]
    assert (last["rows_done"], last["rows"], last["errors"], last["not_run"]) == (4, 7, 1, 3)


def test_progress_counts_finished_rows_and_ends_in_a_final_state():
    bar = Progress(total=10, enabled=False, initial=2, errors=1)
    bar.update(rows=3, errors=1, tokens=30, cost=0.01)
    bar.update(rows=0, not_run=5)
    assert (bar.done, bar.errors, bar.not_run, bar.tokens) == (5, 2, 5, 30)
    bar.finish("interrupted")
    assert (bar.state, bar.style) == ("interrupted", "danger")
    assert final_state("finished", 0) == "finished"
    assert final_state("finished", 2) == "finished with errors"
    assert final_state("cancelled", 0) == "cancelled"
    assert final_state("budget", 0) == "budget reached"


def test_text_bar_shows_failed_and_not_run():
    import io

    from tqdm import tqdm

    out = io.StringIO()
    bar = Progress(total=4, enabled=False)
    bar._bar = tqdm(total=4, file=out, desc="dspex run")  # the text bar, written to `out`
    bar.update(rows=2, errors=1, tokens=10)
    bar.update(rows=0, not_run=2)
    bar.finish("interrupted")
    text = out.getvalue()
    assert "dspex run (interrupted)" in text and "2/4" in text
    assert "failed=1" in text and "not run=2" in text


def test_notebook_bar_colour_says_the_final_state():
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm

    for run_status, errors, style in (("finished", 0, "success"),
                                      ("finished", 1, "warning"),
                                      ("interrupted", 0, "danger"),
                                      ("cancelled", 0, "warning")):
        bar = Progress(total=4, enabled=False)
        bar._bar = tqdm(total=4, display=False)
        bar.update(rows=2 if run_status != "finished" else 4, errors=errors)
        inner = bar._bar
        bar.finish(run_status)
        assert inner.container.pbar.bar_style == style, run_status


def test_part_columns_reject_unknown_statuses():
    with pytest.raises(ValueError, match="unknown row status"):
        status.part_columns(1, "done", None, 0)
    cols = status.part_columns(2, "ok", None, [1, 2])
    assert pa.table(cols).column("attempts").to_pylist() == [1, 2]
    assert status.totals(pa.chunked_array([["ok", "error", "not_run", "invalid"]])) == {
        "errors": 2, "ok": 1, "cached": 0, "invalid": 1, "not_run": 1}


def test_bar_events_and_usage_agree_at_the_end_of_a_cancelled_run_with_errors(server, spec,
                                                                             pool, capsys):
    from dspex_lab import telemetry

    server.configure(latency_ms=10)
    data = [{"question": "[[fail:500]] a"}, {"question": None}] + [
        {"question": f"What is {i} + 7?"} for i in range(300)]
    cancel, seen = threading.Event(), []

    def on_part(frame):  # parts carry their status: cancel once the failed row is in
        seen.extend(frame["status"].tolist())
        if len(seen) >= 30 and "error" in seen:
            cancel.set()

    telemetry.clear()
    out = go(data, spec, pool, progress=True, chunk_size=10, concurrency=2, cancel=cancel,
             on_part=on_part)
    usage = out.attrs["usage"]
    assert usage["status"] == "cancelled" and usage["not_run"] > 0
    assert usage["errors"] == 2 and usage["invalid"] == 1  # the 500 and the bad input
    finished = usage["rows"] - usage["not_run"]
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("dspex run (cancelled):") and f" {finished}/{len(data)} " in final
    assert f"failed={usage['errors']} " in final and f"not run={usage['not_run']:,} " in final
    last = telemetry.events("run.progress").iloc[-1]
    assert (last["rows_done"], last["errors"], last["not_run"]) == (
        finished, usage["errors"], usage["not_run"])
    assert status.counts(out["status"])["not_run"] == usage["not_run"]
    assert usage["retries"] > 0 and last["retries"] == usage["retries"]  # the 500 was retried
    assert f"retries={usage['retries']:,}" in final
