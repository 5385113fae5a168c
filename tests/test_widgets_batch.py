"""BatchJob (a run in a background thread, with cancel) and the BatchRunner widget, against the
embedded LM server with an in-process thread pool (real worker processes:
tests/integration/test_batch_pool.py covers ``run`` itself)."""

import concurrent.futures as cf
import time

import pandas as pd
import pytest

import dspex_lab.batch as batch
from dspex_lab.errors import ConfigurationError
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server
from dspex_lab.widgets.batch_job import LIVE_ROWS, BatchJob, not_run
from dspex_lab.widgets.batch_runner import BatchRunner

NO_RETRY = batch.RetryPolicy(max_retries=0)


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def pool():
    with cf.ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(autouse=True)
def fresh(server):
    with fresh_run_state(server):
        yield


@pytest.fixture
def spec(server):
    return make_spec(server, EMBEDDED_MODEL)


def questions(n, tag=""):
    return pd.DataFrame({"question": [f"What is {i} + 1?{tag}" for i in range(n)]})


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# -- BatchJob -------------------------------------------------------------------------------------

def test_job_runs_in_the_background_and_reports_progress(spec, pool):
    job = BatchJob("question -> answer", questions(30), lm=spec, pool=pool, chunk_size=5,
                   retry=NO_RETRY)
    assert job.state == "ready" and job.total == 30
    assert job.start() is job
    out = job.wait(60)
    assert job.state == "finished" and not job.running
    assert out["answer"].tolist() == [str(i + 1) for i in range(30)]
    assert (job.done_rows, job.errors, job.not_run) == (30, 0, 0)
    assert job.tokens > 0 and job.cost > 0 and job.rows_per_s > 0
    assert job.run_id == out.attrs["run_id"]
    live = job.live_frame(max_rows=None)
    assert len(live) == 30 and set(live["answer"]) == set(out["answer"])
    assert list(live.columns[:2]) == ["question", "answer"]
    assert sorted(live.index) == list(range(30))  # indexed like the data
    assert len(job.live_frame(7)) == 7
    with pytest.raises(ConfigurationError, match="runs once"):
        job.start()


def test_cancel_stops_promptly_and_keeps_finished_rows(server, spec, pool):
    server.configure(latency_ms=100.0)
    job = BatchJob("question -> answer", questions(300, " slow"), lm=spec, pool=pool,
                   concurrency=4, chunk_size=4, retry=NO_RETRY).start()
    wait_until(lambda: job.done_rows >= 8)
    start = time.perf_counter()
    job.cancel()
    out = job.wait(30)
    assert time.perf_counter() - start < 3.0
    assert job.state == "cancelled" and out.attrs["usage"]["status"] == "cancelled"
    answered = out["error"].isna()
    assert 8 <= answered.sum() < 300
    assert job.done_rows == answered.sum() and job.not_run == 300 - answered.sum()
    good = out[answered]
    assert (good["answer"] == [str(int(q.split()[2]) + 1) for q in good["question"]]).all()
    assert out.loc[~answered, "error"].str.startswith("Cancelled").all()
    assert out.attrs["usage"]["not_run"] == 300 - answered.sum()
    assert batch.last_run() is out


def test_job_failure_is_kept_for_wait(spec, pool):
    job = BatchJob("question -> answer", pd.DataFrame({"q": ["x"]}), lm=spec, pool=pool)
    job.start()
    with pytest.raises(Exception, match="columns="):
        job.wait(30)
    assert job.state == "failed" and job.result is None


def test_live_rows_are_bounded_and_not_run_rows_recognised():
    job = BatchJob("question -> answer", questions(1))
    for i in range(30):
        job._on_part(pd.DataFrame({"question": [f"q{i}"] * 100, "answer": [str(i)] * 100},
                                  index=range(100 * i, 100 * (i + 1))))
    frame = job.live_frame(max_rows=None)
    assert LIVE_ROWS <= len(frame) < LIVE_ROWS + 100
    assert list(frame.columns) == ["question", "answer"] and frame.index[-1] == 2999
    assert frame["answer"].iloc[-1] == "29" and len(job.live_frame(5)) == 5
    frame = pd.DataFrame({"status": ["ok", "not_run", "not_run", "cached", "error", "invalid"],
                          "error": [None, "Interrupted: x", "NotRun: y", None,
                                    "Interrupted: text is not what counts", "ValidationError"]})
    assert not_run(frame).tolist() == [False, True, True, False, False, False]
    assert not not_run(frame[["error"]]).any()  # no status column: nothing is known not run


# -- BatchRunner ----------------------------------------------------------------------------------

def test_runner_picks_data_and_program_from_the_namespace_and_runs(spec, pool):
    ns = {"df": questions(12), "other": questions(2), "n": 3}
    runner = BatchRunner(namespace=ns, lm=spec, pool=pool, retry=NO_RETRY, interval=0.05)
    assert runner.data_picker.options == ("df", "other")
    ns["later"] = questions(1)
    runner.children[0].children[-1].click()  # the refresh button
    assert runner.data_picker.options == ("df", "later", "other")
    runner.run_button.click()
    assert "Write a signature" in runner.status.value and runner.job is None
    runner.data_picker.value = "df"
    runner.program_box.value = "question -> answer"
    runner.run_button.click()
    assert runner.run_button.disabled and not runner.cancel_button.disabled
    out = runner.wait(60)
    assert out["answer"].tolist() == [str(i + 1) for i in range(12)]
    assert runner.progress.value == runner.progress.max == 12
    assert runner.progress.bar_style == "success" and "12 / 12" in runner.progress.description
    assert "finished" in runner.status.value and ">12</td>" in runner.table.value
    assert not runner.run_button.disabled and runner.cancel_button.disabled
    assert not runner.extra.children  # no failures: no triage button
    runner.close()


def test_runner_cancel_button_and_triage(server, spec, pool):
    server.configure(latency_ms=100.0)
    data = questions(200, " slow")
    runner = BatchRunner(data=data, program="question -> answer", lm=spec, pool=pool,
                         concurrency=4, chunk_size=4, retry=NO_RETRY, interval=0.05)
    runner.run()
    wait_until(lambda: runner.job.done_rows >= 4)
    wait_until(lambda: "<td " in runner.table.value)  # live rows arrive while it runs
    runner.cancel_button.click()
    out = runner.wait(30)
    assert runner.job.state == "cancelled" and runner.progress.bar_style == "warning"
    assert runner.progress.value == out["error"].isna().sum() < 200
    assert "not run" in runner.status.value
    assert "Cancelled" not in runner.table.value and " slow</td>" in runner.table.value
    triage_button = runner.extra.children[0]
    triage_button.click()
    view = runner.extra.children[0]
    assert view.model.counts() == {"not_run": int(out["error"].notna().sum())}


def test_runner_with_a_program_object(spec, pool):
    from dspex_lab.programs import as_program

    runner = BatchRunner(data=questions(3), program=as_program("question -> answer", module="cot"),
                         lm=spec, pool=pool)
    assert runner.data_picker not in runner.children[0].children
    assert runner.program_box not in runner.children[0].children
    runner.run()
    out = runner.wait(60)
    assert "reasoning" in out.columns and out["answer"].tolist() == ["1", "2", "3"]
