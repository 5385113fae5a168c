"""Fault injection with real processes and real HTTP (no mocks): LM drops, malformed replies,
hung and slow-loris replies, a SIGKILLed and a SIGSTOPped worker. Every scenario asserts the
same invariants: no row lost, none duplicated, order kept, and every failed row has a status
and a cause (``status``/``error_type``/``error``)."""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dspex_lab import batch
from dspex_lab.pipeline import Pipeline, dspy_step
from dspex_lab.testing import fresh_run_state
from dspex_lab.workers import WorkerPool

sys.path.insert(0, str(Path(__file__).parent))
from _loris import LorisServer

pytestmark = pytest.mark.timeout(120)
RETRY = batch.RetryPolicy(max_retries=2, base_delay=0.002, max_delay=0.02)


@pytest.fixture(scope="module")
def pool():
    with WorkerPool("fault-suite", size=2, max_attempts=3, task_timeout=6) as workers:
        assert workers.ready(timeout=120)
        yield workers


@pytest.fixture(autouse=True)
def fresh(lm_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(lm_server):
        yield


def check_invariants(out, questions, expected):
    """No row lost or duplicated, in order; ok rows right; failed rows with status + cause."""
    assert len(out) == len(questions) and list(out.index) == list(range(len(questions)))
    for i, row in out.iterrows():
        if row["status"] == "ok":
            assert row["answer"] == expected[i], (i, row.to_dict())
            assert pd.isna(row["error"])
        else:
            assert row["status"] in ("error", "not_run", "cancelled"), row["status"]
            assert isinstance(row["error_type"], str) and row["error_type"], row.to_dict()
            assert isinstance(row["error"], str) and row["error"], row.to_dict()
    return {i for i, s in enumerate(out["status"]) if s != "ok"}


MARKERS = ["drop", "badjson", "badutf8", "truncated", "html", "once:500", "once:drop"]


def test_lm_drops_and_malformed_replies_fail_only_their_rows(lm_server, pool, dspy_lm):
    questions = [f"What is {i} + 1?" for i in range(40)]
    marked = {3 + 5 * k: m for k, m in enumerate(MARKERS)}
    for i, m in marked.items():
        questions[i] += f" [[fail:{m}]]"
    expected = [str(i + 1) for i in range(40)]
    out = batch.run("question -> answer", pd.DataFrame({"question": questions}), lm=dspy_lm,
                    pool=pool, progress=False, retry=RETRY, timeout=5, chunk_size=8)
    failed = check_invariants(out, questions, expected)
    assert failed == {i for i, m in marked.items() if not m.startswith("once:")}
    types = dict(zip(out.index[list(failed)], out.loc[list(failed), "error_type"],
                     strict=True))
    assert all(t.endswith("Error") or t == "LMProviderError" for t in types.values()), types


def test_a_hung_lm_call_times_out_and_its_row_fails_alone(lm_server, pool, dspy_lm):
    lm_server.configure(hang_s=30)
    questions = [f"What is {i} * 2?" for i in range(12)]
    questions[5] += " [[fail:timeout]]"
    t0 = time.perf_counter()
    out = batch.run("question -> answer", pd.DataFrame({"question": questions}), lm=dspy_lm,
                    pool=pool, progress=False, max_retries=0, timeout=1.5, chunk_size=4)
    assert time.perf_counter() - t0 < 20
    failed = check_invariants(out, questions, [str(i * 2) for i in range(12)])
    assert failed == {5}, out.loc[5, "error"]
    cause = out.loc[5, "error_type"] + out.loc[5, "error"]
    assert "timeout" in cause.lower(), cause


def _questions(n, marked=()):
    return [f"row {i}" + (" [[loris]]" if i in marked else "") for i in range(n)]


@pytest.mark.slow
def test_slow_loris_replies_lose_no_rows():
    with LorisServer(trickle_s=0.1) as url:  # ~24 s a reply, byte by byte
        import dspy

        lm = dspy.LM("openai/loris", api_base=url, api_key="x", cache=False, num_retries=0)
        qs = _questions(10, marked={2, 7})
        # a read timeout of 1 s never fires, as every byte comes sooner; the row's attempt is
        # bounded by the wall clock instead (2 * timeout + 10 s), and only those rows fail
        started = time.perf_counter()
        out = batch.run("question -> answer", pd.DataFrame({"question": qs}), lm=lm,
                        progress=False, max_retries=0, chunk_size=5, timeout=1)
        took = time.perf_counter() - started
    failed = check_invariants(out, qs, [str(i) for i in range(10)])
    assert failed == {2, 7}, out[["status", "error"]]
    assert set(out.loc[[2, 7], "error_type"]) == {"LMTimeout"}
    assert took < 20, f"the trickling rows held the run for {took:.1f} s"


@pytest.mark.slow
def test_a_slow_loris_reply_in_a_pipeline_fails_its_row_at_the_timeout(pool):
    with LorisServer(trickle_s=0.25) as url:  # ~60 s a reply: only a row deadline stops it
        import dspy

        lm = dspy.LM("openai/loris", api_base=url, api_key="x", cache=False, num_retries=0)
        qs = _questions(6, marked={4})
        p = Pipeline([dspy_step("question -> answer")], name="loris")
        t0 = time.perf_counter()
        out = batch.run(p, pd.DataFrame({"question": qs}), lm=lm, pool=pool, progress=False,
                        max_retries=0, timeout=2, cache=False)
        assert time.perf_counter() - t0 < 20
    assert check_invariants(out, qs, [str(i) for i in range(6)]) == {4}
    assert out.loc[4, "error_type"] == "StepTimeout"


def _busy_pid(pool, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        busy = [w["pid"] for w in pool.status()["workers"] if w["state"] == "busy" and w["pid"]]
        if busy:
            return busy[0]
        time.sleep(0.01)
    raise AssertionError("no worker became busy")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["sigkill", "sigstop"])
@pytest.mark.slow
def test_a_killed_or_stopped_worker_loses_no_rows(lm_server, pool, dspy_lm, sig):
    lm_server.configure(latency_ms=50)
    questions = [f"What is {i} + 3?" for i in range(80)]
    victims: list[int] = []

    def strike(part):  # when the first chunk is back, the others are in flight
        if not victims:
            victims.append(_busy_pid(pool))
            os.kill(victims[0], sig)

    try:
        out = batch.run("question -> answer", pd.DataFrame({"question": questions}),
                        lm=dspy_lm, pool=pool, progress=False, retry=RETRY, chunk_size=5,
                        cache=False, concurrency=4, on_part=strike)
    finally:
        for pid in victims:  # a stopped worker the pool did not reap: let it go
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    failed = check_invariants(out, questions, [str(i + 3) for i in range(80)])
    assert victims and len(failed) <= 10  # at most the chunk of the stopped worker
    assert pool.ready(timeout=30)
