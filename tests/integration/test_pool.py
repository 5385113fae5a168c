"""WorkerPool with real processes: results, errors, sessions, recycling, resizing, status.

One pool (2 workers, nothing preloaded) is shared by the module; tests that need other
settings make their own small pool.
"""

import os
import signal
import sys
import threading
import time

import pandas as pd
import psutil
import pytest
from _pool_tasks import Counter, echo, pid_after, raise_value_error, sleep_then

from dspex_lab.errors import PoolError, RemoteError, TaskCancelled, WorkerCrashed
from dspex_lab.workers import WorkerPool, stored
from dspex_lab.workers.worker import OUTPUT_LIMIT

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool("test", size=2, preload=())
    assert p.ready(timeout=60)
    yield p
    p.shutdown()


def live_pids(p):
    assert p.ready(timeout=30)
    return sorted(w["pid"] for w in p.status()["workers"] if w["state"] in ("idle", "busy"))


def test_call_submit_and_map_return_results(pool):
    assert pool.call(pow, 2, 10) == 1024
    assert pool.submit(divmod, 7, 2).result(timeout=10) == (3, 1)
    assert list(pool.map(echo, range(20))) == list(range(20))
    assert sorted(pool.map(echo, range(20), ordered=False)) == list(range(20))
    assert pool.call(echo, x={"a": [1, 2]}) == {"a": [1, 2]}


def test_status_reflects_the_processes(pool):
    before = pool.status()["tasks_done"]
    pids = {pool.call(pid_after, i)[1] for i in range(10)}
    status = pool.status()
    assert status["name"] == "test" and status["size"] == 2 and status["alive"] == 2
    assert status["tasks_done"] >= before + 10
    zygote = psutil.Process(status["zygote_pid"])
    assert zygote.ppid() == os.getpid()
    workers = {w["pid"] for w in status["workers"]}
    assert pids <= workers
    for row in status["workers"]:
        proc = psutil.Process(row["pid"])
        assert proc.ppid() == zygote.pid and row["rss_mb"] > 0
    futs = [pool.submit(sleep_then, i, 0.5) for i in range(4)]
    time.sleep(0.2)
    busy = pool.status()
    assert busy["busy"] == 2 and busy["queued"] >= 1
    assert [f.result(timeout=10) for f in futs] == [0, 1, 2, 3]


def test_remote_error_carries_the_worker_traceback(pool):
    with pytest.raises(RemoteError) as info:
        pool.call(raise_value_error, "bad input 42")
    err = info.value
    assert "ValueError" in str(err) and "bad input 42" in str(err)
    assert "in inner" in err.remote_traceback and "_pool_tasks.py" in err.remote_traceback
    assert isinstance(err.__cause__, ValueError)
    assert "in inner" in str(err.__cause__.__cause__)
    assert pool.call(echo, 1) == 1  # the worker survived


def test_notebook_style_functions_run_in_workers(pool):
    offset = 100

    def add_offset(x):  # a local function: pickled by value, like a notebook cell's
        return x + offset

    assert list(pool.map(add_offset, [1, 2, 3])) == [101, 102, 103]
    assert pool.call(lambda: offset * 2) == 200
    assert list(pool.map(lambda s: s.upper(), ["a", "b"])) == ["A", "B"]


def test_notebook_globals_are_current_at_every_call(pool):
    scope = {"__name__": "__main__", "LIMIT": 1}
    exec("def f():\n    return LIMIT\n", scope)  # as a notebook cell defines it
    f = scope["f"]
    assert pool.call(f) == 1
    scope["LIMIT"] = 2
    assert pool.call(f) == 2
    scope["LIMIT"] = [3]
    assert pool.call(f) == [3]
    scope["LIMIT"].append(4)  # changed in place
    assert pool.call(f) == [3, 4]


def test_main_module_functions_run_in_workers(tmp_path):
    script = tmp_path / "nb.py"
    script.write_text(
        "from dspex_lab.workers import WorkerPool\n"
        "def square(x):\n"
        "    return x * x\n"
        "with WorkerPool('main', size=1, preload=()) as p:\n"
        "    print(sum(p.map(square, range(5))))\n")
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "30"


def _chatty(n):
    import threading

    print("working on", n)
    helper = threading.Thread(target=print, args=(f"helper of {n}",))
    helper.start()
    helper.join()
    if n < 0:
        raise ValueError("negative")
    return n + 1


def test_what_a_task_prints_is_printed_where_its_result_is_collected(pool, capsys):
    fut = pool.submit(_chatty, 1)
    assert fut.exception(30) is None and fut.output == "working on 1\nhelper of 1\n"
    assert capsys.readouterr().out == ""  # printed when the result is collected
    assert fut.result() == 2
    assert capsys.readouterr().out == "working on 1\nhelper of 1\n"
    with pytest.raises(Exception, match="negative"):
        pool.submit(_chatty, -1).result()
    assert capsys.readouterr().out == "working on -1\nhelper of -1\n"  # failures too
    assert list(pool.map(_chatty, [5, 6])) == [6, 7]
    assert capsys.readouterr().out.splitlines() == ["working on 5", "helper of 5",
                                                    "working on 6", "helper of 6"]
    fut = pool.submit(print, "x" * (OUTPUT_LIMIT + 10))
    fut.result()
    fut.result()  # printed once
    out = capsys.readouterr().out
    assert out.count("x") == OUTPUT_LIMIT and "11 more characters" in out  # 10 + newline


def test_output_relay_can_be_turned_off(capfd):
    with WorkerPool("quiet", size=1, preload=(), relay_output=False) as quiet:
        fut = quiet.submit(_chatty, 2)
        assert fut.exception(30) is None and fut.output is None  # nothing came back
        assert fut.result() == 3
    captured = capfd.readouterr()  # the worker's own stdout: the terminal, as before
    assert "working on 2" in captured.out


def test_dataframes_travel_both_ways(pool):
    df = pd.DataFrame({"a": range(1000), "b": [f"s{i}" for i in range(1000)]})
    back = pool.call(lambda d: d.assign(c=d["a"] * 2), df)
    assert list(back.columns) == ["a", "b", "c"] and back["c"].sum() == 2 * df["a"].sum()


def test_future_cancel_stops_a_running_task_and_keeps_the_worker(pool):
    pids = live_pids(pool)
    fut = pool.submit(sleep_then, 1, 30)
    time.sleep(0.3)
    start = time.monotonic()
    assert fut.cancel()
    with pytest.raises(TaskCancelled):
        fut.result(timeout=5)
    assert time.monotonic() - start < 1 and fut.cancelled()
    assert pool.call(echo, 5) == 5
    time.sleep(0.2)
    assert live_pids(pool) == pids  # interrupted with SIGINT, not killed


def test_session_keeps_state_on_one_worker(pool):
    with pool.session() as s:
        s.store("counter", Counter)  # a class: built in the worker
        assert [s.call("counter.increment") for _ in range(3)] == [1, 2, 3]
        assert s.call("counter.increment", by=10) == 13
        assert {s.submit(os.getpid).result(timeout=10) for _ in range(5)} == {s.pid}
        s.store("n", 41)  # a value: pickled and sent
        assert s.submit(lambda: stored("n") + 1).result(timeout=10) == 42
        assert s.get("counter").n == 13
        with pytest.raises(PoolError, match="Nothing named 'missing'"):
            s.call("missing")
    with pytest.raises(PoolError, match="closed"):
        s.call("counter.increment")


def test_session_whose_worker_dies_raises_a_clear_error(pool):
    s = pool.session()
    s.store("counter", Counter)
    assert s.call("counter.increment") == 1
    os.kill(s.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="open a new session") as info:
        for _ in range(50):  # until the pool has noticed
            s.call("counter.increment")
            time.sleep(0.05)
    assert "'counter'" in str(info.value)
    s.close()
    with pool.session() as fresh:
        fresh.store("counter", Counter)
        assert fresh.call("counter.increment") == 1


def test_recycling_after_max_tasks_per_worker():
    with WorkerPool("recycle", size=1, preload=(), max_tasks_per_worker=3) as p:
        pids = [p.call(pid_after, i)[1] for i in range(7)]
        assert len(set(pids[0:3])) == 1 and len(set(pids[3:6])) == 1
        assert pids[0] != pids[3] != pids[6]
        assert p.status()["recycled"] >= 2 and p.status()["restarts"] == 0


def test_resize_up_and_down():
    with WorkerPool("resize", size=1, preload=()) as p:
        assert p.ready(timeout=60) and p.status()["alive"] == 1
        p.resize(3)
        assert p.ready(timeout=30) and p.status()["alive"] == 3
        assert list(p.map(echo, range(30))) == list(range(30))
        p.resize(1)
        deadline = time.monotonic() + 10
        while p.status()["alive"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.status()["alive"] == 1 and p.call(echo, 3) == 3


def test_workers_open_no_tcp_socket(pool):
    pool.call(echo, 1)
    status = pool.status()
    for pid in [status["zygote_pid"], *(w["pid"] for w in status["workers"])]:
        assert psutil.Process(pid).net_connections(kind="inet") == []


def test_workers_see_the_env_and_the_cost_map_setting():
    with WorkerPool("env", size=1, preload=(), env={"OMP_NUM_THREADS": "1"}) as p:
        env = p.call(lambda: dict(os.environ))
    assert env["OMP_NUM_THREADS"] == "1" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_full_queue_blocks_then_raises_with_queue_timeout():
    with WorkerPool("bp", size=1, preload=(), max_queue=2, queue_timeout=0.3) as p:
        p.ready(timeout=60)
        first = p.submit(sleep_then, 0, 2)  # running
        queued = [p.submit(echo, i) for i in range(2)]
        start = time.monotonic()
        with pytest.raises(PoolError, match="stayed full"):
            p.submit(echo, 99)
        assert 0.25 < time.monotonic() - start < 2
        first.cancel()
        assert [f.result(timeout=10) for f in queued] == [0, 1]


def test_shutdown_stops_every_process_and_refuses_new_work():
    p = WorkerPool("down", size=2, preload=(), start="eager")
    assert p.ready(timeout=60)
    status = p.status()
    pids = [status["zygote_pid"], *(w["pid"] for w in status["workers"])]
    running = p.submit(sleep_then, 1, 30)
    time.sleep(0.1)
    p.shutdown()
    with pytest.raises(TaskCancelled):
        running.result(timeout=1)
    assert not [pid for pid in pids if _alive(pid)]
    with pytest.raises(PoolError, match="shut down"):
        p.submit(echo, 1)
    assert not [t for t in threading.enumerate() if t.name == "dspex-pool-down"]


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_telemetry_reports_tasks_and_sessions(pool):
    from dspex_lab import telemetry

    seen = []
    unsubscribe = telemetry.subscribe(seen.append)
    pool.task_events = "all"
    try:
        pool.call(echo, 1)
        with pool.session() as s:
            s.submit(echo, 2).result(timeout=10)
        pool.task_events = True
        pool.call(echo, 3)
    finally:
        pool.task_events = True
        unsubscribe()
    kinds = {e.kind for e in seen}
    assert {"pool.task_queued", "pool.task_started", "pool.task_finished",
            "pool.session_checkout", "pool.session_checkin"} <= kinds
    done = [e.fields for e in seen if e.kind == "pool.task_finished"]
    assert done[0]["pool"] == "test" and done[0]["error"] is None
    assert done[0]["worker"] in live_pids(pool) and done[0]["duration_ms"] >= 0
    assert done[0]["name"] == "_pool_tasks.echo" and done[0]["queue_ms"] >= 0
    assert len(done) == 3 and sum(e.kind == "pool.task_queued" for e in seen) == 2


def test_named_pools_come_from_the_registry():
    from dspex_lab.workers import configure_pools, get_pool, pool_status

    configure_pools({"optimizer": {"preload": ()}})
    opt = get_pool("optimizer")
    try:
        assert get_pool("optimizer") is opt and opt.size == 1
        env = opt.call(lambda: dict(os.environ))
        assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
        assert [s["alive"] for s in pool_status() if s["name"] == "optimizer"] == [1]
        zygote = opt.status()["zygote_pid"]
    finally:
        opt.shutdown()
        configure_pools({"optimizer": {"preload": ("dspy",)}})
    assert not psutil.pid_exists(zygote) or psutil.Process(zygote).status() == "zombie"
    assert get_pool("optimizer") is not opt  # a fresh pool after a shutdown


def test_recycling_above_the_memory_ceiling():
    with WorkerPool("rss", size=1, preload=(), max_rss_mb=1) as p:  # every worker is above
        pids = [p.call(pid_after, i)[1] for i in range(3)]
        assert len(set(pids)) == 3 and p.status()["recycled"] >= 2


def test_a_frozen_worker_fails_its_health_check_and_is_replaced():
    with WorkerPool("health", size=1, preload=(), health_interval=0.3) as p:
        pid = p.call(pid_after, 0)[1]
        os.kill(pid, signal.SIGSTOP)  # alive but unresponsive
        deadline = time.monotonic() + 10
        while p.status()["restarts"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert p.status()["restarts"] == 1
        assert p.call(pid_after, 1)[1] != pid
        assert not _alive(pid)


def test_workers_follow_sys_path_changes_made_after_they_started(pool, tmp_path):
    (tmp_path / "late_module_4242.py").write_text("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import late_module_4242

        assert pool.call(late_module_4242.triple, 2) == 6
        assert list(pool.map(late_module_4242.triple, [1, 2])) == [3, 6]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("late_module_4242", None)


def test_a_function_the_workers_cannot_import_fails_clearly(pool, tmp_path):
    pkg = tmp_path / "kernel_only_4242.py"
    pkg.write_text("def f(x):\n    return x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import kernel_only_4242
    finally:
        sys.path.remove(str(tmp_path))
    pkg.unlink()
    try:
        with pytest.raises(RemoteError, match="could not decode the task"):
            pool.call(kernel_only_4242.f, 1)
        with pytest.raises(RemoteError, match="could not decode the task"):
            list(pool.map(kernel_only_4242.f, [1, 2]))
    finally:
        sys.modules.pop("kernel_only_4242", None)
    assert pool.call(echo, 1) == 1
