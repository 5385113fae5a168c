"""evaluate end to end: predictions through batch.run and the worker pool on the embedded LM."""

import pandas as pd
import pytest

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError
from dspex_lab.evaluate import evaluate
from dspex_lab.native import f1

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (12, 30), (9, 1)]
RUN = {"progress": False, "max_retries": 0}


def arithmetic(fail_rows=0):
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in PAIRS]
    for i in range(fail_rows):
        rows.append({"question": f"What is {i} + 1? [[fail:500]]", "answer": str(i + 1)})
    return pd.DataFrame(rows)


def test_correct_answers_score_one(dspy_lm, lm_server):
    res = evaluate("question -> answer", arithmetic(), lm=dspy_lm, cache=False, **RUN)
    assert res.score == 1.0 and res.n == len(PAIRS) and res.n_errors == 0
    table, expected = res.table, arithmetic()["answer"].tolist()
    assert table["answer"].tolist() == table["gold_answer"].tolist() == expected
    assert table["score"].tolist() == [1.0] * len(PAIRS)
    assert len(res.failures()) == 0
    assert lm_server.stats()["requests"] == len(PAIRS)
    assert res.usage["prompt_tokens"] == lm_server.stats()["prompt_tokens"]


def test_failing_rows_score_zero_and_are_listed(dspy_lm):
    res = evaluate("question -> answer", arithmetic(fail_rows=2), lm=dspy_lm, cache=False, **RUN)
    assert res.n == len(PAIRS) + 2 and res.n_errors == 2
    assert res.score == pytest.approx(len(PAIRS) / (len(PAIRS) + 2))
    failures = res.failures()
    assert failures["question"].str.contains(r"\[\[fail:500\]\]").all() and len(failures) == 2
    assert failures["error"].str.contains("500|server had an error").all()
    assert (failures["score"] == 0.0).all()
    assert "First failures (2" in res._repr_html_()


def test_notebook_lambda_metric_and_gold_mapping(dspy_lm):
    df = arithmetic(fail_rows=1).rename(columns={"answer": "expected"})
    df.loc[0, "expected"] = "wrong"
    res = evaluate("question -> answer", df, lambda gold, pred: gold.answer == pred.answer,
                   gold={"answer": "expected"}, lm=dspy_lm, **RUN)
    assert res.table["score"].tolist() == [0.0] + [1.0] * (len(PAIRS) - 1) + [0.0]
    assert res.metric == "<lambda>" and res.n_errors == 1


def test_dspy_style_metric_and_native_f1(dspy_lm):
    def close_enough(example, pred, trace=None):
        return abs(int(example.answer) - int(pred.answer)) <= 1

    assert evaluate("question -> answer", arithmetic(), close_enough, lm=dspy_lm, **RUN).score == 1
    res = evaluate("question -> answer", arithmetic(), f1, lm=dspy_lm, **RUN)
    assert res.score == 1.0 and res.metric == "f1"


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
    assert res.score == 1.0 and res.table["cached"].all()
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
    assert lm_server.stats()["requests"] == 0
