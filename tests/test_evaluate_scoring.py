"""Scoring predictions in the kernel (no pool): native, row and DSPy-style metrics, errors."""

import math

import pandas as pd
import pytest

from dspex_lab.errors import ConfigurationError
from dspex_lab.evaluate import (
    EvaluationResult,
    Row,
    gold_columns,
    resolve_metric,
    score_predictions,
    takes_trace,
)
from dspex_lab.native import exact_match, f1
from dspex_lab.programs import as_program

PROG = as_program("question -> answer")


def data():
    return pd.DataFrame({"question": ["1+1?", "2+2?", "3+3?", "4+4?"],
                         "answer": ["2", "4", "6", "8"], "id": [1, 2, 3, 4]})


def predictions(answers, errors=None):
    errors = errors or [None] * len(answers)
    return pd.DataFrame({"question": data()["question"], "answer": answers, "error": errors,
                         "latency_ms": 1.0, "prompt_tokens": 10, "completion_tokens": 2,
                         "cost": 0.0, "cached": False})


def test_native_metric_scores_and_table_layout():
    table = score_predictions(PROG, data(), predictions(["2", " 4 ", "7", "8"]), exact_match,
                              {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert list(table.columns[:5]) == ["question", "id", "answer", "gold_answer", "score"]
    assert table["answer"].tolist() == ["2", " 4 ", "7", "8"]          # predictions
    assert table["gold_answer"].tolist() == ["2", "4", "6", "8"]
    assert {"error", "latency_ms", "prompt_tokens", "cost", "cached"} <= set(table.columns)


def test_errored_rows_score_zero_even_when_they_would_match():
    preds = predictions(["2", None, "6", ""], errors=[None, "LMError: 500", None, "boom"])
    table = score_predictions(PROG, data(), preds, exact_match, {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert table["error"].tolist() == [None, "LMError: 500", None, "boom"]


def test_row_metric_gets_attribute_rows_and_skips_errors():
    seen = []

    def metric(gold, pred):
        seen.append((gold.question, gold.id, pred.answer))
        return gold["answer"] in pred.answer

    preds = predictions(["2", "it is 4", "x", "8"], errors=[None, None, None, "timeout"])
    table = score_predictions(PROG, data(), preds, metric, {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert seen == [("1+1?", 1, "2"), ("2+2?", 2, "it is 4"), ("3+3?", 3, "x")]


def test_metric_exceptions_and_bad_return_values_are_row_errors():
    def metric(gold, pred):
        if pred.answer == "x":
            raise KeyError("nope")
        return "not a number" if pred.answer == "8" else 1

    table = score_predictions(PROG, data(), predictions(["2", "4", "x", "8"]), metric,
                              {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert table["error"][2].startswith("metric raised KeyError")
    assert "return a number or a bool" in table["error"][3]


def test_dspy_style_metric_gets_example_and_prediction():
    pytest.importorskip("dspy")
    calls = []

    def metric(example, pred, trace=None):
        calls.append((sorted(example.inputs().keys()), trace))
        return float(example.answer == pred.answer)

    table = score_predictions(PROG, data(), predictions(["2", "5", "6", "8"]), metric,
                              {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert calls[0] == (["question"], None)


def test_gold_mapping_and_multiple_fields():
    df = data().rename(columns={"answer": "expected"})
    table = score_predictions(PROG, df, predictions(["2", "4", "6", "0"]), f1,
                              gold_columns(PROG, df, {"answer": "expected"}, needed=True))
    assert table["score"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert "expected" not in table.columns and "gold_answer" in table.columns

    prog = as_program("question -> answer, unit")
    df = data().assign(unit=["u", "u", "v", "w"])
    preds = predictions(["2", "4", "6", "8"]).assign(unit=["u", "x", "v", "x"])
    gold = gold_columns(prog, df, None, needed=True)
    assert gold == {"answer": "answer", "unit": "unit"}
    table = score_predictions(prog, df, preds, exact_match, gold)
    assert table["score"].tolist() == [1.0, 0.5, 1.0, 0.5]
    bound = score_predictions(prog, df, preds, exact_match.on("unit"), gold)
    assert bound["score"].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_gold_columns_are_checked_before_running():
    with pytest.raises(ConfigurationError, match="no gold column 'nope'"):
        gold_columns(PROG, data(), {"answer": "nope"}, needed=True)
    with pytest.raises(ConfigurationError, match="does not output"):
        gold_columns(PROG, data(), {"reply": "answer"}, needed=True)
    with pytest.raises(ConfigurationError, match="no column named 'answer'"):
        gold_columns(PROG, data().drop(columns="answer"), None, needed=True)
    assert gold_columns(PROG, data().drop(columns="answer"), None, needed=False) == {}
    assert gold_columns(PROG, data(), "id", needed=True) == {"answer": "id"}


def test_resolve_metric_kinds():
    assert resolve_metric("f1") == ("native", f1)
    assert resolve_metric(lambda g, p: 1)[0] == "row"
    assert resolve_metric(lambda e, p, trace=None: 1)[0] == "dspy"
    assert takes_trace(lambda a, b, c: 1) and not takes_trace(len)
    with pytest.raises(ConfigurationError, match="Unknown metric 'bleu'"):
        resolve_metric("bleu")
    with pytest.raises(ConfigurationError, match="callable"):
        resolve_metric(3)


def test_row_reads_items_and_attributes():
    row = Row(answer="5")
    assert row.answer == row["answer"] == "5"
    with pytest.raises(AttributeError, match="no field 'question'"):
        row.question  # noqa: B018


def test_evaluation_result_summary_failures_and_reprs():
    preds = predictions(["2", "5", "6", None], errors=[None, None, None, "LMError: 500"])
    table = score_predictions(PROG, data(), preds, exact_match, {"answer": "answer"})
    res = EvaluationResult(score=float(table["score"].mean()), table=table,
                           metric="exact_match", program="Program(predict, 'q -> a')")
    assert res.score == 0.5 and float(res) == 0.5 and res.n == 4 and res.n_errors == 1
    assert res.failures()["question"].tolist() == ["2+2?", "4+4?"]
    assert res.errors()["error"].tolist() == ["LMError: 500"]
    assert res.usage["prompt_tokens"] == 40
    html = res._repr_html_()
    assert "exact_match" in html and "First failures (2" in html and "&#x27;" in html
    bundle = res._repr_mimebundle_()
    assert bundle["text/plain"].startswith("EvaluationResult(metric=exact_match, score=0.5")
    assert not math.isnan(res.score)


def test_dspex_lab_evaluate_and_optimize_stay_callable_when_imported_as_modules():
    import dspex_lab
    import dspex_lab.evaluate
    import dspex_lab.optimize

    assert callable(dspex_lab.evaluate) and callable(dspex_lab.optimize)
    with pytest.raises(ConfigurationError, match="Unknown optimizer 'Nope'"):
        dspex_lab.optimize("question -> answer", [], None, "Nope")
    with pytest.raises(ConfigurationError, match="got no rows"):
        dspex_lab.evaluate("question -> answer", [])
