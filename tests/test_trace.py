"""Row traces (``df.dspex.trace``) and the readable view (``df.dspex.show``), end to end
against the embedded LM server with an in-process thread pool."""

import concurrent.futures as cf

import pandas as pd
import pytest

import dspex_lab.batch as batch
from dspex_lab import trace as trace_mod
from dspex_lab.display.frame import ResultTable, cause
from dspex_lab.errors import ConfigurationError
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server

FAST_RETRY = batch.RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)


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


def go(server, pool, df, **kw):
    return batch.run("question -> answer", df, lm=make_spec(server, EMBEDDED_MODEL), pool=pool,
                     progress=False, retry=FAST_RETRY, **kw)


def frame(n=6, tag=""):
    df = pd.DataFrame({"question": [f"What is {i} + 1?{tag}" for i in range(n)]},
                      index=pd.RangeIndex(100, 100 + n))
    df.loc[102, "question"] = "[[fail:500]] boom"
    df.loc[104, "question"] = f"[[fail:once:500]] retried then fine{tag}"
    return df


def test_a_failed_row_is_traced_with_every_attempt_and_its_prompts(server, pool):
    res = go(server, pool, frame())
    t = res.dspex.trace(102)
    assert t.row["status"] == "error" and t.row["attempts"] == FAST_RETRY.max_retries + 1
    assert len(t.attempts) == FAST_RETRY.max_retries + 1
    assert all("LMServerError" in a["error"] or "500" in a["error"] for a in t.attempts)
    assert [c["attempt"] for c in t.calls] == [1, 2, 3]
    assert any("[[fail:500]] boom" in m["content"] for m in t.calls[0]["messages"])
    assert t.calls[0]["model"].endswith(EMBEDDED_MODEL)
    html, text = t._repr_html_(), repr(t)
    assert "attempt 3" in html and "[[fail:500]] boom" in html and "status" in html
    assert "attempt 1" in text and "boom" in text
    # a filtered frame keeps the run's labels
    assert res[res["status"] == "error"].dspex.trace(102).attempts == t.attempts


def test_ok_rows_keep_no_trace_unless_asked_and_say_how(server, pool):
    res = go(server, pool, frame())
    t = res.dspex.trace(100)
    assert t.trace is None and "trace=True" in repr(t) and t.row["status"] == "ok"
    res = go(server, pool, frame(tag=" (traced)"), trace=True)
    ok = res.dspex.trace(100)
    assert ok.attempts and "error" not in ok.attempts[0]
    assert ok.calls[0]["response"] and "What is 0 + 1?" in repr(ok)
    retried = res.dspex.trace(104)  # failed once, then answered
    assert retried.row["status"] == "ok" and [("error" in a) for a in retried.attempts] == [
        True, False]
    assert res.dspex.trace(0).label == 100  # an int that is not a label: a position


def test_trace_refuses_frames_that_are_not_runs_and_unknown_rows(server, pool):
    with pytest.raises(ConfigurationError, match=r"not a dspex_lab\.run result"):
        pd.DataFrame({"a": [1]}).dspex.trace(0)
    res = go(server, pool, frame(2))
    with pytest.raises(ConfigurationError, match="not in this frame"):
        res.dspex.trace(999)


def test_traces_stay_bounded_per_run():
    trace_mod.collect("bounded", [0, 1], {trace_mod.METADATA_KEY: trace_mod.encode(
        {0: {"attempts": [], "calls": []}, 1: {"attempts": [], "calls": []}})})
    assert trace_mod.lookup("bounded", 1) == {"attempts": [], "calls": []}
    for i in range(trace_mod.MAX_RUNS + 1):
        trace_mod.collect(f"other{i}", [0], {trace_mod.METADATA_KEY: b'{"0": {}}'})
    assert trace_mod.lookup("bounded", 1) is None


def test_show_colours_status_shows_error_causes_and_rounds_for_display_only(server, pool):
    res = go(server, pool, frame())
    res["score"] = [0.123456789] * len(res)
    html = res.dspex.show()._repr_html_()
    assert "rgba(211,47,47" in html and "rgba(56,142,60" in html     # error red, ok green
    assert "LMServerError" in html and "0.1235" in html and "0.123456789" not in html
    assert res.loc[100, "score"] == 0.123456789                       # the data keep precision
    assert "LMServerError" in repr(res.dspex.show())
    assert cause("X: first line\n\nsecond") == "X: first line"


def test_show_cuts_big_frames_to_head_and_tail():
    df = pd.DataFrame({"status": ["ok"] * 200, "error": [None] * 200})
    html = ResultTable(df, max_rows=30)._repr_html_()
    assert "170 more rows" in html and html.count("<tr>") == 1 + 30 + 1


def test_the_batch_runner_table_has_one_header_cell_per_column():
    import re

    from dspex_lab.widgets._ui import table_html

    df = pd.DataFrame({"question": ["q1", "q2"], "answer": ["a", None],
                       "latency_ms": [1.23456, 2.0], "status": ["ok", "error"],
                       "error": [None, "X: cause\nmore"]},
                      index=pd.Index([5, 6], name="id"))
    html = table_html(df)
    header = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    assert header.count("<tr>") == 1 and header.count("<th") == 1 + len(df.columns)
    for row in re.findall(r"<tbody>(.*?)</tbody>", html, re.S)[0].split("</tr>")[:-1]:
        assert row.count("<th") + row.count("<td") == 1 + len(df.columns)
    assert "1.2" in html and "1.23456" not in html and "X: cause" in html and "more" not in \
        html.split('title="')[0]
