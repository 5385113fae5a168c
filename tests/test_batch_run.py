"""``run`` end to end against the embedded LM server, with an in-process thread pool.

(The same code paths with real worker processes: tests/integration/test_batch_pool.py.)
"""

import concurrent.futures as cf
import threading
import time
import warnings

import dspy
import pandas as pd
import pyarrow as pa
import pytest

import dspex_lab.batch as batch
from dspex_lab import telemetry
from dspex_lab.errors import RunError, ValidationError
from dspex_lab.lm.config import EMBEDDED_MODEL, LMSpec
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


@pytest.fixture
def spec(server):
    return make_spec(server, EMBEDDED_MODEL)


def go(data, spec, pool, program="question -> answer", **kw):
    kw.setdefault("progress", False)
    kw.setdefault("retry", FAST_RETRY)
    return batch.run(program, data, lm=spec, pool=pool, **kw)


def questions(n, tag=""):
    return pd.DataFrame({"question": [f"What is {i} + 1?{tag}" for i in range(n)],
                         "id": range(n)}, index=pd.RangeIndex(100, 100 + n))


def test_rows_come_back_in_order_with_outputs_usage_and_arrow_dtypes(server, spec, pool):
    df = questions(30)
    out = go(df, spec, pool, concurrency=4, chunk_size=7)
    assert out.index.equals(df.index) and out["id"].tolist() == list(range(30))
    assert out["answer"].tolist() == [str(i + 1) for i in range(30)]
    assert list(out.columns) == ["question", "id", "answer", "error", "latency_ms",
                                 "prompt_tokens", "completion_tokens", "cost", "cached",
                                 "status", "error_type", "attempts"]
    assert str(out["prompt_tokens"].dtype) == "int64[pyarrow]"
    assert str(out["cached"].dtype) == "bool[pyarrow]"
    usage, stats = out.attrs["usage"], server.stats()
    assert usage["rows"] == 30 and usage["errors"] == 0 and stats["requests"] == 30
    assert usage["prompt_tokens"] == stats["prompt_tokens"] > 0
    assert usage["completion_tokens"] == stats["completion_tokens"] > 0
    assert usage["cost"] == pytest.approx(out["cost"].sum()) and usage["cost"] > 0
    assert batch.last_run() is out


def test_missing_column_fails_before_any_lm_call(server, spec, pool):
    with pytest.raises(ValidationError, match="columns="):
        go(pd.DataFrame({"q": ["x"]}), spec, pool)
    assert server.stats()["requests"] == 0


def test_columns_mapping_list_of_dicts_and_arrow(spec, pool):
    rows = [{"prompt": "What is 2 + 2?"}, {"prompt": "What is 3 + 3?"}]
    out = go(rows, spec, pool, columns={"question": "prompt"})
    assert out["answer"].tolist() == ["4", "6"] and out["prompt"].tolist()[0] == rows[0]["prompt"]
    out = go(pa.table({"question": ["What is 5 + 5?"]}), spec, pool)
    assert out["answer"].tolist() == ["10"]


def test_failing_rows_are_recorded_retried_and_never_abort_the_others(server, spec, pool):
    df = questions(12)
    df.loc[[103, 107], "question"] = ["[[fail:500]] a", "[[fail:500]] b"]
    out = go(df, spec, pool)
    failed = out.index[out["error"].notna()].tolist()
    assert failed == [103, 107]
    assert "LMServerError" in out.loc[103, "error"]
    assert out["answer"].notna().sum() == 10
    assert server.stats()["errors"] == {"500": 2 * (FAST_RETRY.max_retries + 1)}


def test_on_error_raise_lists_the_failed_rows_and_keeps_the_frame(spec, pool):
    df = questions(5)
    df.loc[102, "question"] = "[[fail:500]] x"
    with pytest.raises(RunError) as info:
        go(df, spec, pool, on_error="raise")
    assert info.value.rows == [2] and "1 of 5 rows failed" in str(info.value)
    assert batch.last_run()["error"].notna().tolist() == [False, False, True, False, False]


def test_invalid_rows_error_without_a_call(server, spec, pool):
    out = go([{"question": "What is 1 + 1?"}, {"question": None}], spec, pool)
    assert out["error"].iloc[1].startswith("ValidationError")
    assert server.stats()["requests"] == 1


def test_cached_rows_make_no_calls(server, spec, pool):
    df = questions(10)
    go(df, spec, pool)
    again = go(df, spec, pool)
    assert server.stats()["requests"] == 10
    assert again["cached"].all() and again.attrs["usage"]["cost"] == 0
    assert again["answer"].tolist() == [str(i + 1) for i in range(10)]


def test_runs_and_single_calls_share_the_cache(server, spec, pool):
    from dspex_lab.calls import predict

    single = predict("question -> answer", question="What is 20 + 1?", lm=spec,
                     implementation="native")
    out = go([{"question": "What is 20 + 1?"}], spec, pool)
    assert out["cached"].all() and out["answer"].iloc[0] == single.answer == "21"
    assert server.stats()["requests"] == 1


def test_resume_reads_the_spill_and_recomputes_only_failed_rows(server, spec, pool, tmp_path):
    df = questions(8)
    df.loc[[101, 105], "question"] = ["[[fail:once:500]] a", "[[fail:once:500]] b"]
    where = tmp_path / "spill"
    opts = {"cache": False, "spill": where, "retry": batch.RetryPolicy(max_retries=0)}
    first = go(df, spec, pool, **opts)
    assert first["error"].notna().sum() == 2
    server.reset()  # the fail-once markers fire again on a fresh server
    server.configure(error_rate=0.0)
    before = server.stats()["requests"]
    second = go(df, spec, pool, resume=True, **{**opts, "retry": FAST_RETRY})
    assert server.stats()["requests"] - before == 2 + 2  # each: one failure, one retry
    assert second["error"].isna().all() and second.attrs["usage"]["resumed"] == 6


def test_record_then_replay_with_the_server_stopped(spec, pool, tmp_path):
    log = tmp_path / "answers.lmlog"
    df = questions(6)
    with running_server() as own:
        live_spec = LMSpec(EMBEDDED_MODEL, {"api_base": own.url, "api_key": "x"})
        with batch.record(log):
            live = go(df, live_spec, pool, cache=False)
            fast = go(df.assign(question=df["question"] + " fast"), live_spec, pool,
                      cache=False, transport="fast")
    assert fast.attrs["usage"]["fast_rows"] == 6
    with batch.replay(log):
        again = go(df, live_spec, pool, cache=False)
        fast_again = go(df.assign(question=df["question"] + " fast"), live_spec, pool,
                        cache=False, transport="fast")
        missing = go([{"question": "never asked"}], live_spec, pool, cache=False)
    assert again["answer"].tolist() == live["answer"].tolist()
    assert again["prompt_tokens"].tolist() == live["prompt_tokens"].tolist()
    assert fast_again["answer"].tolist() == fast["answer"].tolist()
    assert "No recorded response" in missing["error"].iloc[0]


@pytest.mark.parametrize("transport", ["dspy", "fast"])
def test_a_hung_request_times_out_and_is_retried(server, spec, pool, transport):
    server.configure(hang_s=1.0)
    try:
        out = go([{"question": f"[[fail:once:timeout]] {transport}"}], spec, pool,
                 timeout=0.3, transport=transport)
    finally:
        server.configure(hang_s=60.0)
    assert out["error"].isna().all() and out.attrs["usage"]["retries"] == 1
    assert server.stats()["errors"] == {"timeout": 1}


def test_fast_transport_gives_the_same_answers_as_dspy(server, spec, pool):
    df = questions(20)
    slow = go(df, spec, pool, cache=False)
    quick = go(df, spec, pool, cache=False, transport="fast")
    assert quick.attrs["usage"]["fast_rows"] == 20
    assert quick["answer"].tolist() == slow["answer"].tolist()
    assert quick["prompt_tokens"].tolist() == slow["prompt_tokens"].tolist()
    cot = go(df.head(3), spec, pool, cache=False, transport="fast", module="cot")
    assert cot.attrs["usage"]["fast_rows"] == 3 and cot["reasoning"].notna().all()


def test_budget_stop_leaves_the_rest_unrun(server, spec, pool):
    df = questions(40)
    with pytest.warns(UserWarning, match="budget"):
        out = go(df, spec, pool, budget_usd=1e-4, concurrency=2, chunk_size=2)
    usage = out.attrs["usage"]
    assert usage["status"] == "budget" and usage["cost"] <= 1e-4 * 1.5
    not_run = out["error"].str.startswith("BudgetExceeded").fillna(False)
    assert not_run.sum() > 0 and server.stats()["requests"] == 40 - not_run.sum()


def test_budget_warn_keeps_going(server, spec, pool):
    with pytest.warns(UserWarning, match="over its budget"):
        out = go(questions(12), spec, pool, budget_usd=1e-5, on_budget="warn", chunk_size=4)
    assert out["error"].isna().all() and out.attrs["usage"]["status"] == "finished"


def test_circuit_breaker_stops_calling_a_dead_lm(server, spec, pool):
    server.configure(error_rate=1.0, error_kinds=["500"])
    breaker = batch.BreakerConfig(failures=4, seconds=0, cooldown=0.05, trials=2)
    with pytest.warns(UserWarning, match="circuit breaker"):
        out = go(questions(60), spec, pool, circuit_breaker=breaker, concurrency=2,
                 chunk_size=10)
    assert out["error"].notna().all()
    assert out["error"].str.contains("CircuitOpen").sum() > 30
    assert server.stats()["requests"] < 60


def test_circuit_breaker_pauses_and_carries_on_when_the_lm_recovers(server, spec, pool):
    server.configure(error_rate=1.0, error_kinds=["500"])
    recover = threading.Timer(0.6, server.configure, kwargs={"error_rate": 0.0})
    recover.start()
    breaker = batch.BreakerConfig(failures=4, seconds=0, cooldown=0.2, trials=10)
    out = go(questions(40), spec, pool, circuit_breaker=breaker, concurrency=2, chunk_size=10,
             retry=batch.RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05))
    recover.join()
    usage = out.attrs["usage"]
    assert usage["status"] == "finished" and usage["circuit_recoveries"] >= 1
    assert not out["error"].fillna("").str.contains("CircuitOpen").any()
    assert out["error"].isna().sum() >= 34  # only rows whose retries ran out in the outage
    answered = out[out["error"].isna()]
    assert (answered["answer"] == (answered["id"] + 1).astype(str)).all()


@pytest.mark.timeout(60)
def test_a_rate_limited_trial_call_does_not_stall_the_paused_rows(server, spec, pool):
    server.configure(error_rate=1.0, error_kinds=["500"])
    to_429 = threading.Timer(0.3, server.configure, kwargs={"error_kinds": ["429"]})
    recover = threading.Timer(1.0, server.configure, kwargs={"error_rate": 0.0})
    to_429.start()
    recover.start()
    breaker = batch.BreakerConfig(failures=2, seconds=0, cooldown=0.1, trials=20)
    out = go(questions(10, " trial"), spec, pool, circuit_breaker=breaker, concurrency=2,
             chunk_size=10, retry=batch.RetryPolicy(max_retries=40, base_delay=0.01,
                                                    max_delay=0.05))
    to_429.join()
    recover.join()
    assert server.stats()["errors"].get("429", 0) > 0  # trials were rate limited
    assert out.attrs["usage"]["status"] == "finished" and out["error"].isna().all()


def test_rate_limits_lower_the_concurrency(server, spec, pool):
    server.configure(error_rate=0.3, error_kinds=["429"])
    out = go(questions(60), spec, pool, concurrency=8, chunk_size=10,
             retry=batch.RetryPolicy(max_retries=8, base_delay=0.001, max_delay=0.01))
    usage = out.attrs["usage"]
    assert out["error"].isna().all()
    assert usage["rate_limited"] == server.stats()["errors"]["429"] > 0
    assert usage["concurrency"]["decreases"] >= 1


class TwoStep(dspy.Module):
    """Two LM calls per row: usage must add up."""

    def __init__(self):
        super().__init__()
        self.solve = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> ok: bool")

    def forward(self, question):
        answer = self.solve(question=question).answer
        return dspy.Prediction(answer=answer, ok=self.check(question=question,
                                                             answer=answer).ok)


@pytest.mark.parametrize("transport", ["fast", "dspy"])
def test_rate_limit_headers_pace_the_calls_instead_of_drawing_429s(server, spec, pool,
                                                                 transport):
    from dspex_lab.batch import chunk

    retry = batch.RetryPolicy(max_retries=30, base_delay=0.01, max_delay=0.2)

    def run_with(headers):
        chunk._STATE["pacers"].clear()  # what this process learned from earlier runs
        server.reset()
        server.configure(request_limit=20, limit_window_s=0.5, ratelimit_headers=headers)
        out = go(questions(80, f" {transport} {headers}"), spec, pool, concurrency=16,
                 transport=transport, retry=retry, cache=False)
        return out, server.stats()["errors"].get("429", 0)

    blind, blind_429 = run_with(False)
    paced, paced_429 = run_with(True)
    assert paced["error"].isna().all(), paced["error"].dropna().unique()[:3]
    assert paced.attrs["usage"]["paced"] > 0 and blind.attrs["usage"]["paced"] == 0
    assert paced_429 * 3 < blind_429, (paced_429, blind_429)
    assert paced.attrs["usage"]["rate_limited"] == paced_429


def test_a_multi_call_module_adds_up_its_usage(server, spec, pool):
    out = go(questions(4), spec, pool, program=TwoStep())
    assert out["answer"].tolist() == ["1", "2", "3", "4"] and out["ok"].notna().all()
    assert server.stats()["requests"] == 8
    assert out.attrs["usage"]["prompt_tokens"] == server.stats()["prompt_tokens"]


def test_requests_per_minute_are_capped(spec, pool):
    start = time.perf_counter()
    go(questions(75, tag=" rpm"), spec, pool, rpm=6000, chunk_size=75)
    assert time.perf_counter() - start >= 0.4  # one chunk gets half: 50/s, burst 50


def test_telemetry_events(spec, pool):
    telemetry.clear()
    go(questions(3), spec, pool)
    kinds = telemetry.events()["kind"].tolist()
    assert kinds.count("run.started") == 1 and kinds.count("run.finished") == 1
    calls = telemetry.events("lm.call")
    assert len(calls) == 3 and set(calls["route"]) == {"pool"}
    assert set(calls["pool"]) == {"ThreadPoolExecutor"}
    assert calls["prompt_tokens"].gt(0).all() and calls["error"].isna().all()
    assert sorted(calls["row"]) == [0, 1, 2]


def test_calls_are_columnar_events_and_rows_without_a_call_are_skipped_events(server, spec,
                                                                            pool):
    telemetry.clear()
    data = [{"question": f"What is {i} + 1?"} for i in range(6)] + [{"question": None}]
    with pytest.warns(UserWarning, match="3 rows were not run"):
        out = go(data, spec, pool, chunk_size=3, budget_usd=1e-9)  # stops after one chunk
    usage = out.attrs["usage"]
    assert usage["status"] == "budget" and usage["not_run"] == 3
    batches = telemetry.get_bus().snapshot(telemetry.CALLS)
    assert [e.fields["calls"].num_rows for e in batches] == [3]  # one event per part
    calls = telemetry.events("lm.call")  # expanded: one row per call actually made
    assert sorted(calls["row"]) == [0, 1, 2] and calls["latency_ms"].gt(0).all()
    assert server.stats()["requests"] == 3
    skipped = telemetry.events("run.skipped")
    assert skipped.groupby("reason")["rows"].sum().to_dict() == {"input": 1, "not_run": 3}
    assert skipped["error"].str.startswith(("ValidationError", "BudgetExceeded")).all()


def test_cancel_set_before_the_run_makes_no_call(server, spec, pool):
    cancel, parts = threading.Event(), []
    cancel.set()
    out = go(questions(5), spec, pool, cancel=cancel, on_part=parts.append)
    assert out.attrs["usage"]["status"] == "cancelled" and out.attrs["usage"]["not_run"] == 5
    assert out["error"].str.startswith("Cancelled").all() and parts == []
    assert server.stats()["requests"] == 0


def test_cancel_from_another_thread_keeps_the_finished_rows(server, spec, pool):
    server.configure(latency_ms=50.0)
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    start = time.perf_counter()
    out = go(questions(400, " c"), spec, pool, concurrency=4, chunk_size=4, cancel=cancel)
    timer.cancel()
    assert time.perf_counter() - start < 3
    answered = out["error"].isna()
    assert out.attrs["usage"]["status"] == "cancelled" and 0 < answered.sum() < 400
    assert out.loc[~answered, "error"].str.startswith("Cancelled").all()
    assert batch.last_run() is out


def test_on_part_sees_every_answered_row_once_and_a_failing_callback_only_warns(spec, pool):
    df = questions(12)
    df.loc[105, "question"] = None  # bad inputs are a result too
    parts = []
    out = go(df, spec, pool, chunk_size=4, on_part=parts.append)
    seen = pd.concat(parts)
    assert sorted(seen.index) == list(df.index)  # indexed like the data
    assert {"question", "answer", "error", "latency_ms", "cached"} <= set(seen.columns)
    assert seen.loc[101, "answer"] == "2" and seen.loc[105, "error"].startswith("Validation")

    def broken(frame):
        raise KeyError("nope")

    with pytest.warns(UserWarning, match="on_part raised KeyError") as caught:
        again = go(questions(8, " b"), spec, pool, chunk_size=2, on_part=broken)
    assert len([w for w in caught if "on_part" in str(w.message)]) == 1
    assert again["error"].isna().all() and again.attrs["usage"]["on_part_failed"]
    assert out["error"].notna().sum() == 1


def test_estimate_from_a_sample(spec, pool):
    df = questions(20, tag=" est")
    est = batch.estimate("question -> answer", df, sample=4, lm=spec, pool=pool)
    assert est.sample_rows == 4 and est.to_compute == 20 and est.cost_usd > 0
    assert est.prompt_tokens > 0 and est.plan[0]["rows"] == 20
    assert "to compute" in repr(est) and "<table>" in est._repr_html_()
    again = batch.estimate("question -> answer", df, sample=0, lm=spec, pool=pool)
    assert again.cached_rows == 4 and again.plan[0]["route"] == "native"


def test_bad_options_are_refused(spec, pool):
    with pytest.raises(Exception, match="on_error"):
        go(questions(1), spec, pool, on_error="ignore")
    with pytest.raises(Exception, match=r"threading\.Event"):
        go(questions(1), spec, pool, cancel=True)
    with pytest.raises(Exception, match="on_part"):
        go(questions(1), spec, pool, on_part="print")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Exception, match="transport"):
            go(questions(1), spec, pool, transport="carrier-pigeon")
