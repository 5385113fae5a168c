"""The reprs: predictions, run summaries, pool tables, history, notes (no LM, no pool)."""

from __future__ import annotations

import pandas as pd
import pytest

from dspex_lab import history
from dspex_lab.calls import CallInfo
from dspex_lab.display import (
    Facts,
    HistoryView,
    Note,
    PoolStatusView,
    PredictionView,
    RunSummary,
    prediction_html,
    prediction_text,
)
from dspex_lab.programs import as_program

dspy = pytest.importorskip("dspy")


def _pred(**fields):
    pred = dspy.Prediction(**fields)
    pred._dspex = CallInfo("chain_of_thought", "pool", "openai/dspex-embedded", 74.25, 149, 12,
                           0.00003, False)
    return pred


def test_prediction_html_has_fields_reasoning_and_call_info():
    html = prediction_html(_pred(reasoning="Because <b>.", answer="Paris", n=3))
    assert "Because &lt;b&gt;." in html and "<b>." not in html
    assert ">answer<" in html and "Paris" in html and "<code" in html   # n=3 shown as code
    for needle in ("chain_of_thought", "openai/dspex-embedded", "pool", "74.2 ms",
                   "149 + 12 tokens", "&lt;$0.0001"):
        assert needle in html
    assert "var(--jp-" in html


def test_prediction_text_and_view():
    pred = _pred(answer="Paris")
    assert prediction_text(pred) == ("answer: Paris\n(chain_of_thought · openai/dspex-embedded"
                                     " · pool · 74.2 ms · 149 + 12 tokens · <$0.0001)")
    bundle = PredictionView(pred)._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    cached = dspy.Prediction(answer="x")
    cached._dspex = CallInfo("predict", "native", "m", 0.2, 0, 0, 0.0, True)
    assert "native (cached)" in prediction_text(cached) and "tokens" not in prediction_text(cached)
    assert prediction_text(dspy.Prediction(answer="plain")) == "answer: plain"


def test_a_cached_answer_says_from_when_and_which_session():
    import time

    from dspex_lab.cache import SESSION

    old = dspy.Prediction(answer="x")
    old._dspex = CallInfo("predict", "native", "m", 0.2, 0, 0, 0.0, True,
                          time.time() - 7300, "another-kernel")
    assert "native (cached from an earlier session, 2 h ago)" in prediction_text(old)
    assert "from an earlier session, 2 h ago" in prediction_html(old)
    mine = dspy.Prediction(answer="x")
    mine._dspex = CallInfo("predict", "native", "m", 0.2, 0, 0, 0.0, True, time.time() - 90,
                           SESSION)
    assert "native (cached from this session, 1 min ago)" in prediction_text(mine)


def test_long_values_are_cut():
    assert "characters)" in prediction_html(dspy.Prediction(answer="x" * 5000))


def test_run_summary():
    frame = pd.DataFrame({"answer": ["a"]})
    frame.attrs["usage"] = {"rows": 10, "errors": 2, "cached": 3, "prompt_tokens": 1000,
                            "completion_tokens": 234, "total_tokens": 1234, "cost": 0.0123,
                            "wall_s": 1.5, "rows_per_s": 6.67}
    summary = RunSummary(frame)
    assert repr(summary) == ("dspex run: finished with errors · 10 rows · 2 failed · 3 cached · "
                             "1,234 tokens · $0.0123 · 1.50 s · 6.7 rows/s")
    assert "<code>error</code>" in summary._repr_html_()
    frame.attrs["usage"] = {"rows": 10, "errors": 0, "cached": 0, "wall_s": 1.0}
    assert repr(RunSummary(frame)) == "dspex run: 10 rows · 0 failed · 0 cached · 1.00 s"


def test_run_summary_of_an_interrupted_run_says_what_is_left():
    frame = pd.DataFrame({"answer": ["a"]})
    frame.attrs["usage"] = {"rows": 5000, "errors": 3, "invalid": 1, "not_run": 3558,
                            "cached": 0, "status": "interrupted", "wall_s": 2.0}
    text = repr(RunSummary(frame))
    assert text == ("dspex run: interrupted · 1,442 finished · 3 failed (1 invalid) · "
                    "3,558 not run · 0 cached · 2.00 s — rerun to finish the 3,558 rows left")
    html = RunSummary(frame)._repr_html_()
    assert "interrupted · 1,442 finished" in html and "rerun to finish the 3,558 rows" in html
    frame.attrs["usage"] = {"rows": 600, "errors": 0, "not_run": 492, "status": "cancelled"}
    assert repr(RunSummary(frame)).startswith("dspex run: cancelled · 108 finished · 0 failed · "
                                              "492 not run")


def test_pool_status_view():
    status = {"name": "general", "state": "running", "size": 2, "alive": 2, "busy": 1,
              "queued": 0, "tasks_done": 7, "failed": 0, "restarts": 0, "broken": None,
              "workers": [{"pid": 11, "state": "busy", "tasks": 4, "sessions": 0,
                           "rss_mb": 80.5, "running": "predict"}]}
    view = PoolStatusView([status])
    lines = repr(view).splitlines()
    assert lines[0].split() == ["pool", "state", "size", "alive", "busy", "queued", "done",
                                "failed", "restarts"]
    assert lines[1].split() == ["general", "running", "2", "2", "1", "0", "7", "0", "0"]
    html = view._repr_html_()
    assert "<details>" in html and "80.5" in html
    assert "No pool is running" in repr(PoolStatusView([]))


def test_history_view_rebuilds_the_prompt():
    history.clear()
    program = as_program("question -> answer", module="cot")
    pred = _pred(reasoning="r", answer="Paris")
    history.record(program, {"question": "Capital of France?"}, pred)
    history.record(program, {"question": "bad"}, error="LMError: boom")
    view = HistoryView(history.recent(5))
    text = repr(view)
    assert "[1] cot  question -> answer  (chain_of_thought · openai/dspex-embedded" in text
    assert "-> answer: Paris" in text and "[2] cot  question -> answer\n" in text
    assert "error: LMError: boom" in text
    html = view._repr_html_()
    assert "[[ ## question ## ]]" in html and "Capital of France?" in html
    assert "[[ ## reasoning ## ]]" in html          # the CoT signature, as DSPy sends it
    assert history.recent(1)[0].messages()[0]["role"] == "system"
    history.clear()
    assert "No calls yet" in repr(HistoryView(history.recent()))


def test_history_is_bounded_and_recent_counts():
    history.clear()
    program = as_program("q -> a")
    for i in range(history.MAX_RECORDS + 5):
        history.record(program, {"q": str(i)}, dspy.Prediction(a="x"))
    assert len(history.recent()) == history.MAX_RECORDS
    assert [r.inputs["q"] for r in history.recent(2)] == [str(history.MAX_RECORDS + 3),
                                                          str(history.MAX_RECORDS + 4)]
    assert history.recent(0) == []
    history.clear()


def test_note_and_facts():
    note = Note("Saved.", pd.DataFrame({"x": [1]}))
    assert "<table" in note._repr_html_() and repr(note).startswith("Saved.\n")
    facts = Facts("LM", [("model", "m"), ("settings", {"temperature": 0})])
    assert repr(facts) == "LM\n  model: m\n  settings: {'temperature': 0}"
    assert facts.as_dict()["model"] == "m"


def test_history_of_an_interrupted_run_counts_rows_by_status():
    frame = pd.DataFrame({"answer": ["a"] * 5})
    frame.attrs["usage"] = {"rows": 5, "errors": 1, "not_run": 3, "cached": 0,
                            "status": "interrupted"}
    rec = history.CallRecord("run", as_program("question -> answer"),
                             usage=dict(frame.attrs["usage"]))
    text = repr(HistoryView([rec]))
    assert "run · interrupted · 2 finished · 1 failed · 3 not run · 0 cached" in text
