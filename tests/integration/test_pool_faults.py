"""WorkerPool under faults, with real processes: crashes, hangs, Ctrl-C, a killed kernel."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from _pool_tasks import (
    echo,
    exit_with,
    ignore_sigint_and_sleep,
    kill_self,
    len_after,
    sleep_short,
    sleep_then,
    slow_pid,
)

from dspex_lab.errors import TaskCancelled, TaskTimeout, WorkerCrashed
from dspex_lab.exchange.shm import list_segments
from dspex_lab.workers import WorkerPool

pytestmark = pytest.mark.timeout(60)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool("faults", size=2, preload=())
    assert p.ready(timeout=60)
    yield p
    p.shutdown()


def busy_pid(p):
    for _ in range(100):
        busy = [w["pid"] for w in p.status()["workers"] if w["state"] == "busy" and w["pid"]]
        if busy:
            return busy[0]
        time.sleep(0.01)
    raise AssertionError("no worker became busy")


def test_worker_killed_mid_task_is_replaced_and_the_batch_completes(pool):
    before = pool.status()
    threading.Timer(0.3, lambda: os.kill(busy_pid(pool), signal.SIGKILL)).start()
    results = list(pool.map(slow_pid, range(50)))
    assert [x for x, _ in results] == list(range(50))
    after = pool.status()
    assert after["retries"] > before["retries"] and after["restarts"] > before["restarts"]
    assert pool.ready(timeout=10) and after["alive"] == 2


def test_a_retried_task_gets_its_shared_memory_arguments_again(pool):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"x": np.arange(2_000_000)})  # 16 MB: travels in shared memory
    fut = pool.submit(len_after, frame, 1.0)
    pid = busy_pid(pool)
    time.sleep(0.5)  # the worker has read (and unlinked) the segment by now
    os.kill(pid, signal.SIGKILL)
    assert fut.result(timeout=30) == 2_000_000
    assert pool.status()["retries"] >= 1
    assert list_segments(pid=os.getpid()) == []


def test_task_that_always_kills_its_worker_raises_worker_crashed(pool):
    with pytest.raises(WorkerCrashed) as info:
        pool.call(kill_self)
    text = str(info.value)
    assert "_pool_tasks.kill_self" in text and "SIGKILL" in text
    assert "2 times" in text and "Likely causes" in text
    with pytest.raises(WorkerCrashed, match="exit code 3"):
        pool.call(exit_with, 3)
    assert pool.call(echo, "still works") == "still works"


def test_hung_task_times_out_and_the_pool_recovers(pool):
    start = time.monotonic()
    fut = pool.submit(sleep_then, 1, 30, timeout=0.5)
    with pytest.raises(TaskTimeout, match=r"timeout of 0\.5 s"):
        fut.result(timeout=10)
    assert time.monotonic() - start < 3
    assert pool.call(echo, 7) == 7
    assert list(pool.map(echo, range(10))) == list(range(10))


def test_ctrl_c_during_a_map_returns_within_a_second_and_the_pool_stays_usable(pool, ctrl_c_raises):
    assert pool.ready(timeout=30)
    main = threading.main_thread().ident
    sent = {}

    def interrupt():
        sent["at"] = time.monotonic()
        signal.pthread_kill(main, signal.SIGINT)

    results = []
    timer = threading.Timer(0.5, interrupt)
    timer.start()
    it = pool.map(sleep_short, range(100))
    with pytest.raises(KeyboardInterrupt):
        for value in it:
            results.append(value)
    assert time.monotonic() - sent["at"] < 1.0
    assert len(results) < 100
    status = pool.status()
    assert status["queued"] == 0
    assert list(pool.map(echo, range(10))) == list(range(10))
    time.sleep(0.2)
    assert pool.status()["busy"] == 0


def test_ctrl_c_during_call_cancels_the_task(pool, ctrl_c_raises):
    main = threading.main_thread().ident
    threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pool.call(sleep_then, 1, 30)
    assert time.monotonic() - start < 1.3
    assert pool.call(echo, 2) == 2


def test_task_ignoring_sigint_is_killed_after_the_grace_period(pool):
    fut = pool.submit(ignore_sigint_and_sleep, 30)
    pid = busy_pid(pool)
    time.sleep(0.2)
    fut.cancel()
    with pytest.raises(TaskCancelled):
        fut.result(timeout=1)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and _not_zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (psutil.pid_exists(pid) and _not_zombie(pid))
    assert pool.call(echo, 1) == 1


def _not_zombie(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


CHILD = """
import json, sys, time
from dspex_lab.exchange.shm import list_segments
from dspex_lab.workers import WorkerPool
pool = WorkerPool("orphans", size=2, preload=())
assert pool.ready(timeout=60)
busy = pool.submit(time.sleep, 120)
time.sleep(0.3)
status = pool.status()
print(json.dumps([status["zygote_pid"], *[w["pid"] for w in status["workers"]]]), flush=True)
sys.stdin.readline()  # the test checks the processes, then lets us exit or kills us
sys.exit(0)
"""


@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_no_worker_outlives_its_kernel(how):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": ROOT})
    try:
        pids = json.loads(child.stdout.readline())
        assert len(pids) == 3 and all(_not_zombie(p) for p in pids)
        if how == "sigkill":
            child.kill()
        else:
            child.stdin.write("exit\n")
            child.stdin.flush()
        assert child.wait(timeout=20) == (-9 if how == "sigkill" else 0)
        deadline = time.monotonic() + 5
        while any(_not_zombie(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in pids if _not_zombie(p)] == []
    finally:
        child.kill()
        child.wait()
