"""Scoring predictions in the kernel (no pool): native, two-argument and DSPy-style metrics,
the two-level table, DSPy's percentage, errors."""

import math

import dspy
import pandas as pd
import pytest

from dspex_lab.errors import ConfigurationError
from dspex_lab.evaluate import (
    EvaluationResult,
    ExampleView,
    as_score,
    dspy_score,
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


def predictions(answers, errors=None, **more):
    """What ``batch.run`` returns for the input frame: input fields, outputs, bookkeeping."""
    errors = errors or [None] * len(answers)
    return pd.DataFrame({"question": data()["question"], "answer": answers, **more,
                         "error": errors, "latency_ms": 1.0, "prompt_tokens": 10,
                         "completion_tokens": 2, "cost": 0.0, "cached": False})


def test_native_metric_scores_and_the_two_level_table():
    table = score_predictions(PROG, data(), predictions(["2", " 4 ", "7", "8"]), exact_match,
                              {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert table.columns.tolist()[:6] == [("example", "question"), ("example", "answer"),
                                          ("example", "id"), ("pred", "answer"), ("score", ""),
                                          ("error", "")]
    assert table["pred"]["answer"].tolist() == ["2", " 4 ", "7", "8"]     # predictions
    assert table["example"]["answer"].tolist() == ["2", "4", "6", "8"]    # gold, same name
    bookkeeping = set(table.columns.get_level_values(0))
    assert {"latency_ms", "prompt_tokens", "cost", "cached"} <= bookkeeping
    assert dspy_score(table["score"].tolist()) == 75.0


def test_errored_rows_score_zero_even_when_they_would_match():
    preds = predictions(["2", None, "6", ""], errors=[None, "LMError: 500", None, "boom"])
    table = score_predictions(PROG, data(), preds, exact_match, {"answer": "answer"})
    assert table["score"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert table["error"].tolist() == [None, "LMError: 500", None, "boom"]


def test_two_argument_metric_gets_an_example_and_a_prediction_and_skips_errors():
    seen = []

    def metric(gold, pred):
        seen.append((type(gold), gold.inputs().toDict(), gold.id, pred.answer))
        return gold["answer"] in pred.answer

    preds = predictions(["2", "it is 4", "x", "8"], errors=[None, None, None, "timeout"])
    table = score_predictions(PROG, data(), preds, metric)
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert seen == [(dspy.Example, {"question": "1+1?"}, 1, "2"),
                    (dspy.Example, {"question": "2+2?"}, 2, "it is 4"),
                    (dspy.Example, {"question": "3+3?"}, 3, "x")]


def test_metric_exceptions_and_bad_return_values_are_row_errors():
    def metric(gold, pred):
        if pred.answer == "x":
            raise KeyError("nope")
        return "not a number" if pred.answer == "8" else 1

    table = score_predictions(PROG, data(), predictions(["2", "4", "x", "8"]), metric)
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert table["error"][2].startswith("metric raised KeyError")
    assert "return a bool, a number" in table["error"][3]


def test_dspy_metric_reads_labels_by_any_name_and_outputs_by_their_own():
    calls = []

    def metric(example, pred, trace=None):
        calls.append((sorted(example.inputs().keys()), sorted(example.labels().keys()), trace))
        return float(example.expected == pred.answer)

    df = data().rename(columns={"answer": "expected"})
    table = score_predictions(PROG, df, predictions(["2", "5", "6", "8"]), metric)
    assert table["score"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert calls[0] == (["question"], ["expected", "id"], None)


def test_an_output_named_like_an_input_keeps_its_name():
    """batch.run suffixes an output named like an input column with ``_pred``; the metric
    and the table see it under its own name."""

    class Rewrite(dspy.Module):
        def forward(self, question):
            return dspy.Prediction(question=question.upper(), answer="2")

    clash = predictions(["2", "4", "6", "8"])
    clash.insert(1, "question_pred", ["Q"] * 4)
    table = score_predictions(as_program(Rewrite()), data(), clash,
                              lambda ex, pred: pred.question == "Q" and ex.question != "Q",
                              view=ExampleView(("question",)))
    assert table["score"].tolist() == [1.0] * 4
    assert table["pred"].columns.tolist() == ["question", "answer"]


def test_gepa_style_feedback_metrics():
    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        ok = gold.answer == pred.answer
        return dspy.Prediction(score=float(ok), feedback="right" if ok else f"want {gold.answer}")

    table = score_predictions(PROG, data(), predictions(["2", "5", "6", "8"]), metric)
    assert table["score"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert table["feedback"].tolist() == ["right", "want 4", "right", "right"]
    assert as_score(True) == (1.0, None) and as_score(0.25) == (0.25, None)
    # native metrics take GEPA's five arguments too (dspy.GEPA checks that it can bind them)
    example = dspy.Example(question="1+1?", answer="2").with_inputs("question")
    assert exact_match(example, dspy.Prediction(answer="2"), None, "self", None) == 1.0


def test_gold_mapping_and_multiple_fields():
    df = data().rename(columns={"answer": "expected"})
    table = score_predictions(PROG, df, predictions(["2", "4", "6", "0"]), f1,
                              gold_columns(PROG, df, {"answer": "expected"}, needed=True))
    assert table["score"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert table["example"].columns.tolist() == ["question", "expected", "id"]

    prog = as_program("question -> answer, unit")
    df = data().assign(unit=["u", "u", "v", "w"])
    preds = predictions(["2", "4", "6", "8"], unit=["u", "x", "v", "x"])
    gold = gold_columns(prog, df, None, needed=True)
    assert gold == {"answer": "answer", "unit": "unit"}
    table = score_predictions(prog, df, preds, exact_match, gold)
    assert table["score"].tolist() == [1.0, 0.5, 1.0, 0.5]
    bound = score_predictions(prog, df, preds, exact_match.on("unit"), gold)
    assert bound["score"].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_example_view_renames_inputs_and_aliases_gold():
    view = ExampleView(("question",), {"question": "q"}, {"answer": "expected"})
    (example,) = view.examples(pd.DataFrame({"q": ["2+2?"], "expected": ["4"], "n": [1]}))
    assert example.inputs().toDict() == {"question": "2+2?"}
    assert example.labels().toDict() == {"expected": "4", "n": 1, "answer": "4"}


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


def test_evaluation_result_summary_failures_results_and_reprs():
    preds = predictions(["2", "5", "6", None], errors=[None, None, None, "LMError: 500"])
    table = score_predictions(PROG, data(), preds, exact_match, {"answer": "answer"})
    res = EvaluationResult(score=dspy_score(table["score"].tolist()), table=table,
                           metric="exact_match", program="Program(predict, 'q -> a')",
                           view=ExampleView(("question",)))
    assert res.score == 50.0 and float(res) == 50.0 and res.n == 4 and res.n_errors == 1
    assert res.failures()["example"]["question"].tolist() == ["2+2?", "4+4?"]
    assert res.errors()["error"].tolist() == ["LMError: 500"]
    assert res.usage["prompt_tokens"] == 40
    example, pred, score = res.results[1]
    assert example.question == "2+2?" and example.answer == "4" and pred.answer == "5"
    assert score == 0.0 and res.results[3][1].toDict() == {}     # errored: empty prediction
    html = res._repr_html_()
    assert "exact_match" in html and "First failures (2" in html and "&#x27;" in html
    bundle = res._repr_mimebundle_()
    assert bundle["text/plain"].startswith("EvaluationResult(metric=exact_match, score=50%")
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


@pytest.mark.parametrize("metric", [exact_match, lambda gold, pred: gold.answer == pred.answer])
def test_rows_that_never_ran_are_not_scored_and_errored_rows_score_zero(metric):
    preds = predictions(["2", None, None, "8"],
                        errors=[None, "LMError: 500", "Cancelled: the run was cancelled", None],
                        status=["ok", "error", "not_run", "ok"])
    table = score_predictions(PROG, data(), preds, metric, {"answer": "answer"})
    scores = table["score"].tolist()
    assert scores[:2] == [1.0, 0.0] and math.isnan(scores[2]) and scores[3] == 1.0
    res = EvaluationResult(score=dspy_score(scores), table=table, metric="exact_match",
                           view=ExampleView(("question",)))
    assert res.score == round(100 * 2 / 3, 2)          # over the 3 scored rows
    assert res.n == 4 and res.n_not_scored == 1 and res.n_errors == 1
    assert res.not_scored()["example"]["question"].tolist() == ["3+3?"]
    assert res.failures()["example"]["question"].tolist() == ["2+2?"]
    assert len(res.results) == 3
    assert "not_scored=1 (never ran; the score is over the 3 scored rows)" in repr(res)
