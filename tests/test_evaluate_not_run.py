"""evaluate() over a run that stopped early: rows that never ran are not scored as 0 (the
score is over the scored rows), rows that failed are (as ``dspy.Evaluate`` scores them)."""

import concurrent.futures as cf
import math

import pandas as pd
import pytest

from dspex_lab import batch, evaluate
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server

RETRY = batch.RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.01)


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
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


def test_rows_not_run_are_left_out_of_the_score(server, pool):
    questions = ["What is 1 + 1?", "[[fail:500]] What is 2 + 2?", "What is 3 + 3?",
                 "What is 4 + 4?", "What is 5 + 5?", "What is 6 + 6?"]
    data = pd.DataFrame({"question": questions, "answer": ["2", "4", "6", "8", "10", "12"]})
    with pytest.warns(UserWarning, match="3 rows were not run"):
        res = evaluate("question -> answer", data, "exact_match",
                       lm=make_spec(server, EMBEDDED_MODEL), pool=pool, progress=False,
                       cache=False, chunk_size=3, budget_usd=1e-9, retry=RETRY)
    assert res.table["status"].tolist() == ["ok", "error", "ok"] + ["not_run"] * 3
    scores = res.table["score"].tolist()
    assert scores[:3] == [1.0, 0.0, 1.0] and all(math.isnan(s) for s in scores[3:])
    assert res.score == round(100 * 2 / 3, 2)
    assert (res.n, res.n_errors, res.n_not_scored, len(res.results)) == (6, 1, 3, 3)
    assert "not_scored=3 (never ran; the score is over the 3 scored rows)" in repr(res)
