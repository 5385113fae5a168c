"""``run`` with real worker processes: faults, retries, crashes and interrupts lose no rows."""

import os
import random
import signal
import threading
import time
import warnings

import pandas as pd
import pytest

import dspex_lab.batch as batch
from dspex_lab.lm.config import EMBEDDED_MODEL, LMSpec
from dspex_lab.testing import fresh_run_state, make_spec, running_server
from dspex_lab.workers import WorkerPool

RETRY = batch.RetryPolicy(max_retries=3, base_delay=0.002, max_delay=0.02)


@pytest.fixture(scope="module")
def pool():
    with WorkerPool("batch-tests", size=2, max_attempts=3) as workers:
        assert workers.ready(timeout=120)
        yield workers


@pytest.fixture(scope="module")
def server():
    with running_server(retry_after_s=0.005) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(server):
        yield


@pytest.fixture
def spec(server):
    return make_spec(server, EMBEDDED_MODEL)


def questions(n, tag):
    return pd.DataFrame({"question": [f"{tag}: what is {i} + 2?" for i in range(n)]})


def test_2000_rows_with_injected_500s_and_random_429s(server, spec, pool):
    df = questions(2000, "faults")
    bad = sorted(random.Random(7).sample(range(2000), 100))  # 5%
    df.loc[bad, "question"] = [f"[[fail:500]] row {i}" for i in bad]
    server.configure(error_rate=0.05, error_kinds=["429"], seed=3)
    out = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False,
                    cache=False, retry=RETRY, concurrency=16)
    stats, usage = server.stats(), out.attrs["usage"]
    assert len(out) == 2000 and out["question"].tolist() == df["question"].tolist()
    assert out.index[out["error"].notna()].tolist() == bad
    assert out.loc[bad, "error"].str.contains("LMServerError").all()
    good = [i for i in range(2000) if i not in set(bad)]
    assert out.loc[good, "answer"].tolist() == [str(i + 2) for i in good]
    # every retryable failure was retried: 500s max_retries times, each 429 once more
    assert stats["errors"]["500"] == len(bad) * (RETRY.max_retries + 1)
    assert stats["ok"] == 1900
    assert stats["errors"]["429"] == usage["rate_limited"] > 0
    assert stats["requests"] == 1900 + stats["errors"]["500"] + stats["errors"]["429"]
    assert usage["prompt_tokens"] == stats["prompt_tokens"]
    assert usage["completion_tokens"] == stats["completion_tokens"]


def test_a_worker_killed_mid_batch_loses_no_rows(server, spec, pool):
    server.configure(latency_ms=20)
    df = questions(400, "kill")
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not killed:
            busy = [w["pid"] for w in pool.status()["workers"] if w["state"] == "busy"]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    threading.Timer(0.3, kill_a_busy_worker).start()
    out = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False,
                    cache=False, retry=RETRY, concurrency=8, chunk_size=40)
    assert killed, "no worker was busy to kill"
    assert out["error"].isna().all() and len(out) == 400
    assert out["answer"].tolist() == [str(i + 2) for i in range(400)]


def test_an_interrupted_run_keeps_finished_rows_and_a_rerun_does_only_the_rest(server, spec,
                                                                             pool,
                                                                             ctrl_c_raises):
    server.configure(latency_ms=20)
    n = 1200  # about 3 s at 8 calls in flight
    df = questions(n, "interrupt")
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))

    def press_ctrl_c_soon(part):  # once 80 rows are done: the interrupt lands mid-run
        if not timer.is_alive() and last_rows[0] + len(part) >= 80:
            timer.start()
        last_rows[0] += len(part)

    last_rows = [0]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False,
                              concurrency=8, chunk_size=40, on_part=press_ctrl_c_soon)
    finally:
        timer.cancel()
    assert first.attrs["usage"]["status"] == "interrupted"
    finished = int(first["error"].isna().sum())
    assert 0 < finished < n
    message = next(str(w.message) for w in caught if "interrupted" in str(w.message))
    assert f"{finished:,} of {n:,} rows finished" in message
    assert first.attrs["usage"]["not_run"] == n - finished
    assert first["error"].dropna().str.startswith("Interrupted").all()
    assert batch.last_run() is first
    requests_first = server.stats()["requests"]
    assert requests_first == finished  # running chunks finished, queued ones never started
    second = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False,
                       concurrency=8)
    assert second["error"].isna().all()
    assert server.stats()["requests"] - requests_first == n - finished
    assert int(second["cached"].sum()) == finished


def settled_requests(server, quiet_s=0.3, timeout=10.0):
    """The server's request count once it stopped moving for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout
    last = server.stats()["requests"]
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = server.stats()["requests"]
        if now == last:
            return now
        last = now
    return last


def test_cancel_stops_the_workers_chunks_at_once_and_a_rerun_does_only_the_rest(server, spec,
                                                                               pool):
    server.configure(latency_ms=50)
    n = 600
    df = questions(n, "cancel")
    cancel, parts = threading.Event(), []

    def on_part(frame):
        parts.append(frame)
        if sum(map(len, parts)) >= 40:
            cancel.set()

    start = time.perf_counter()
    first = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False,
                      concurrency=8, chunk_size=20, cancel=cancel, on_part=on_part)
    assert time.perf_counter() - start < 10
    usage = first.attrs["usage"]
    answered = first["error"].isna()
    assert usage["status"] == "cancelled" and 40 <= answered.sum() < n
    assert first.loc[~answered, "error"].str.startswith("Cancelled").all()
    assert usage["not_run"] == n - answered.sum()
    assert sorted(pd.concat(parts).index) == sorted(first.index[answered])
    pool.ready(timeout=60)  # workers whose chunk was cancelled are replaced
    server.configure(latency_ms=0)
    before = settled_requests(server)  # calls already sent by cancelled chunks may land late
    second = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False)
    assert second["error"].isna().all()
    assert server.stats()["requests"] - before == n - answered.sum()


def test_workers_record_and_replay_with_the_server_stopped(spec, pool, tmp_path):
    log = tmp_path / "pool.lmlog"
    df = questions(40, "replay")
    with running_server() as own:
        live_spec = LMSpec(EMBEDDED_MODEL, {"api_base": own.url, "api_key": "x"})
        with batch.record(log):
            live = batch.run("question -> answer", df, lm=live_spec, pool=pool, progress=False,
                             cache=False)
        assert own.stats()["requests"] == 40
    with batch.replay(log):
        again = batch.run("question -> answer", df, lm=live_spec, pool=pool, progress=False,
                          cache=False)
    assert again["error"].isna().all()
    assert again["answer"].tolist() == live["answer"].tolist()
    assert again.attrs["usage"]["total_tokens"] == live.attrs["usage"]["total_tokens"]
