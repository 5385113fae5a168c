"""Fail fast: a row's retry budget in time, honest error texts, retries counted live."""

import concurrent.futures as cf

import pytest

import dspex_lab.batch as batch
from dspex_lab import telemetry
from dspex_lab.batch.chunk import _describe
from dspex_lab.batch.progress import Progress
from dspex_lab.batch.retry import Failure, RetryPolicy
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server


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


def go(data, server, pool, **kw):
    return batch.run("question -> answer", data, lm=make_spec(server, EMBEDDED_MODEL),
                     pool=pool, progress=False, cache=False, **kw)


def test_the_time_budget_stops_retrying_a_row_that_always_fails(server, pool):
    policy = RetryPolicy(max_retries=1000, base_delay=0.05, max_delay=0.05, max_elapsed_s=0.3)
    out = go([{"question": "[[fail:500]] budget"}], server, pool, retry=policy)
    row = out.iloc[0]
    assert row["status"] == "error"
    assert 2 <= row["attempts"] < 1000
    assert f"gave up after {row['attempts']} attempts in" in row["error"]
    assert row["latency_ms"] < 3_000


def test_permanent_errors_are_not_retried(server, pool):
    out = go([{"question": "[[fail:badjson]] permanent"}], server, pool,
             retry=RetryPolicy(base_delay=0.01, max_delay=0.01))
    assert out.iloc[0]["status"] == "error"
    assert out.iloc[0]["attempts"] == 1
    assert "gave up after" not in out.iloc[0]["error"]


def test_rate_limits_are_not_counted_against_the_budget():
    policy = RetryPolicy(max_retries=3, max_elapsed_s=1.0)
    slow_down = Failure(retryable=True, status=429, rate_limited=True)
    down = Failure(retryable=True, status=500)
    assert not policy.gives_up(0, elapsed_s=5.0, wait_s=1.0, failure=slow_down)
    assert policy.gives_up(0, elapsed_s=0.5, wait_s=1.0, failure=down)
    assert policy.gives_up(3, elapsed_s=0.0, wait_s=0.0, failure=slow_down)
    assert not RetryPolicy(max_elapsed_s=None).gives_up(1, 1e9, 1e9, down)
    with pytest.raises(ValueError, match="max_elapsed_s"):
        RetryPolicy(max_elapsed_s=-1)


def test_a_429_text_has_no_engine_advice_that_contradicts_dspex_lab_retries(server, pool):
    out = go([{"question": "[[fail:429]] limited"}], server, pool,
             retry=RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.01))
    text = out.iloc[0]["error"]
    assert text.startswith("LMRateLimitError")
    assert "lm15" not in text and "never retries" not in text
    assert "application layer" not in _describe(RuntimeError(
        "x - Retry with backoff in your application layer (lm15 never retries for you) - y"))


def test_retries_are_counted_live_in_progress_and_telemetry(server, pool):
    events = []
    unsubscribe = telemetry.get_bus().subscribe(
        lambda e: events.append(e) if e.kind == "run.progress" else None)
    try:
        go([{"question": "[[fail:2:500]] twice"}, {"question": "fine"}], server, pool,
           retry=RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.001))
    finally:
        unsubscribe()
    assert events and events[-1].fields["retries"] == 2
    bar = Progress(total=3, enabled=False)
    bar.update(1, retries=2)
    assert bar.retries == 2
