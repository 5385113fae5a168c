"""evaluate end to end: predictions through batch.run and the worker pool on the embedded LM,
scored as ``dspy.Evaluate`` scores them (same percentage, same examples and predictions)."""

import dspy
import pandas as pd
import pytest

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError
from dspex_lab.evaluate import evaluate
from dspex_lab.native import exact_match, f1

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (12, 30), (9, 1)]
RUN = {"progress": False, "max_retries": 0}


def arithmetic(fail_rows=0, wrong=()):
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b + (i in wrong))}
            for i, (a, b) in enumerate(PAIRS)]
    for i in range(fail_rows):
        rows.append({"question": f"What is {i} + 1? [[fail:500]]", "answer": str(i + 1)})
    return pd.DataFrame(rows)


def devset(df, inputs=("question",)):
    return [dspy.Example(**row).with_inputs(*inputs) for row in df.to_dict("records")]


def plain_dspy(program, examples, metric, lm):
    """What DSPy itself reports for the same rows, LM and metric."""
    with dspy.context(lm=lm):
        return dspy.Evaluate(devset=examples, metric=metric, num_threads=1,
                             display_progress=False, max_errors=100)(program)


def same_as_dspy(res, ref):
    assert res.score == ref.score
    assert [float(s) for *_, s in res.results] == [float(s) for *_, s in ref.results]
    assert [p.toDict() for _, p, _ in res.results] == [p.toDict() for _, p, _ in ref.results]
    assert [e.toDict() for e, *_ in res.results] == [e.toDict() for e, *_ in ref.results]


def answer_matches(example, pred, trace=None):
    return example.answer == pred.answer


def test_correct_answers_score_100_percent(dspy_lm, lm_server):
    res = evaluate("question -> answer", arithmetic(), lm=dspy_lm, cache=False, **RUN)
    assert res.score == 100.0 and res.n == len(PAIRS) and res.n_errors == 0
    table, expected = res.table, arithmetic()["answer"].tolist()
    assert table["pred"]["answer"].tolist() == table["example"]["answer"].tolist() == expected
    assert table["score"].tolist() == [1.0] * len(PAIRS)
    assert len(res.failures()) == 0
    assert lm_server.stats()["requests"] == len(PAIRS)
    assert res.usage["prompt_tokens"] == lm_server.stats()["prompt_tokens"]


@pytest.mark.parametrize("program", ["predict", "cot", "cot_module"])
def test_dspy_metric_reading_an_output_named_like_the_gold_column(dspy_lm, program):
    """The metric reads ``pred.answer`` although the data has an ``answer`` column (issue #12,
    item 7): the same score as dspy.Evaluate, for a signature and for a custom module."""
    options = {"module": "cot"} if program == "cot" else {}
    if program == "predict":
        prog, ours = dspy.Predict("question -> answer"), "question -> answer"
    elif program == "cot":
        prog, ours = dspy.ChainOfThought("question -> answer"), "question -> answer"
    else:
        class Solve(dspy.Module):
            def __init__(self):
                super().__init__()
                self.step = dspy.ChainOfThought("question -> answer")

            def forward(self, question):
                return self.step(question=question)

        prog = ours = Solve()
    df = arithmetic(wrong={1, 4})
    res = evaluate(ours, df, answer_matches, lm=dspy_lm, **options, **RUN)
    ref = plain_dspy(prog, devset(df), answer_matches, dspy_lm)
    assert ref.score == pytest.approx(100 * 4 / 6, abs=0.01)
    same_as_dspy(res, ref)
    assert res.table["pred"]["answer"].tolist() == [str(a + b) for a, b in PAIRS]


def test_labels_named_as_the_user_likes_and_a_list_of_examples(dspy_lm):
    df = arithmetic(wrong={0}).rename(columns={"answer": "expected"}).assign(level=[1, 2] * 3)

    def metric(example, pred, trace=None):
        return example.expected == pred.answer and example.level > 0

    for data in (df, devset(df)):
        res = evaluate("question -> answer", data, metric, lm=dspy_lm, **RUN)
        ref = plain_dspy(dspy.Predict("question -> answer"), devset(df), metric, dspy_lm)
        same_as_dspy(res, ref)
        assert res.score == pytest.approx(100 * 5 / 6, abs=0.01)
    assert res.results[0][0] is data[0]                    # the caller's own Example objects
    assert res.table["example"].columns.tolist() == ["question", "expected", "level"]


def test_bool_float_and_feedback_metrics_and_failing_rows_match_dspy(dspy_lm):
    df = arithmetic(fail_rows=2, wrong={2})

    def half_credit(example, pred):
        return 1.0 if example.answer == pred.answer else 0.5

    def feedback(gold, pred, trace=None, pred_name=None, pred_trace=None):
        ok = gold.answer == pred.answer
        return dspy.Prediction(score=float(ok), feedback="ok" if ok else f"want {gold.answer}")

    for metric in (answer_matches, half_credit, feedback):
        res = evaluate("question -> answer", df, metric, lm=dspy_lm, cache=False, **RUN)
        ref = plain_dspy(dspy.Predict("question -> answer"), devset(df), metric, dspy_lm)
        assert res.score == ref.score and res.n_errors == 2
        assert [float(s) for *_, s in res.results] == [float(s) for *_, s in ref.results]
    assert res.table["feedback"].tolist()[:3] == ["ok", "ok", "want 12"]
    failures = res.failures()
    assert failures["example"]["question"].str.contains(r"\[\[fail:500\]\]").sum() == 2
    assert failures["error"].str.contains("500|server had an error").sum() == 2
    assert "First failures (3" in res._repr_html_()


def test_native_metrics_score_like_dspy(dspy_lm):
    df = arithmetic(wrong={3})
    for metric in (exact_match, f1, "exact_match"):
        res = evaluate("question -> answer", df, metric, lm=dspy_lm, **RUN)
        native = exact_match if metric == "exact_match" else metric
        ref = plain_dspy(dspy.Predict("question -> answer"), devset(df), native, dspy_lm)
        assert res.score == ref.score == pytest.approx(100 * 5 / 6, abs=0.01)
    assert res.metric == "exact_match"


def test_gold_mapping_for_native_metrics(dspy_lm):
    df = arithmetic(fail_rows=1).rename(columns={"answer": "expected"})
    df.loc[0, "expected"] = "wrong"
    res = evaluate("question -> answer", df, f1, gold={"answer": "expected"}, lm=dspy_lm, **RUN)
    assert res.table["score"].tolist() == [0.0] + [1.0] * (len(PAIRS) - 1) + [0.0]
    assert res.metric == "f1" and res.n_errors == 1 and res.gold == {"answer": "expected"}
    assert res.results[1][0].answer == res.results[1][0].expected   # the alias label


def test_evaluate_emits_telemetry_and_uses_the_cache(dspy_lm, lm_server):
    seen = []
    unsubscribe = telemetry.subscribe(lambda event: seen.append(event))
    try:
        evaluate("question -> answer", arithmetic(), lm=dspy_lm, **RUN)
        before = lm_server.stats()["requests"]
        res = evaluate("question -> answer", arithmetic(), lm=dspy_lm, **RUN)
    finally:
        unsubscribe()
    assert lm_server.stats()["requests"] == before          # every row from the cache
    assert res.score == 100.0 and res.table["cached"].all()
    kinds = [getattr(e, "kind", None) for e in seen]
    assert "evaluate" in kinds
    routes = [e for e in seen if getattr(e, "kind", None) == "router.route"]
    assert any(e.fields.get("operation") == "metric.exact_match" for e in routes)


def test_bad_columns_fail_before_any_lm_call(dspy_lm, lm_server):
    with pytest.raises(ConfigurationError, match="no column 'question'"):
        evaluate("question -> answer", pd.DataFrame({"q": ["x"], "answer": ["1"]}),
                 lm=dspy_lm, **RUN)
    with pytest.raises(ConfigurationError, match="no gold column 'gold'"):
        evaluate("question -> answer", arithmetic(), gold={"answer": "gold"}, lm=dspy_lm, **RUN)

    class Anything(dspy.Module):
        def forward(self, **kwargs):
            return dspy.Prediction(answer="1")

    with pytest.raises(ConfigurationError, match="input_fields="):
        evaluate(Anything(), arithmetic(), answer_matches, lm=dspy_lm, **RUN)
    assert lm_server.stats()["requests"] == 0


def test_columns_map_inputs_and_the_table_keeps_the_data_names(dspy_lm):
    df = arithmetic().rename(columns={"question": "q"})
    res = evaluate("question -> answer", df, answer_matches, columns={"question": "q"},
                   lm=dspy_lm, **RUN)
    ref = plain_dspy(dspy.Predict("question -> answer"),
                     devset(arithmetic()), answer_matches, dspy_lm)
    same_as_dspy(res, ref)
    assert res.table["example"].columns.tolist() == ["q", "answer"]
