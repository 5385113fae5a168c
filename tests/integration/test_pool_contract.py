"""One suite, both backends: a local ``WorkerPool`` and a ``DaskPool`` on a ``LocalCluster``
keep the same contract (``dspex_lab.workers.contract``)."""

from __future__ import annotations

import concurrent.futures as cf
import time

import pytest

from dspex_lab.errors import RemoteError, TaskTimeout
from dspex_lab.workers import WorkerPool, stored
from dspex_lab.workers.contract import STATUS_KEYS, Pool, PoolSession


@pytest.fixture(scope="module", params=["local", "dask"])
def pool(request):
    if request.param == "local":
        p = WorkerPool("contract", size=2, preload=())
        yield p
        p.shutdown()
        return
    distributed = pytest.importorskip("distributed")
    from dspex_lab.distributed import DaskPool

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    yield DaskPool(client, name="contract")
    client.close()
    cluster.close()


class Counter:
    def __init__(self, start=0):
        self.n = start

    def bump(self, by=1):
        self.n += by
        return self.n


def fail(x):
    raise ValueError(f"bad {x}")


def test_both_backends_are_pools(pool):
    assert isinstance(pool, Pool)
    assert pool.kind in ("pool", "distributed")
    assert pool.ready(timeout=60)
    assert pool.size >= 1
    status = pool.status()
    assert set(STATUS_KEYS) <= set(status) and status["name"] == "contract"


def test_submit_call_map_with_notebook_closures(pool):
    offset = 10
    future = pool.submit(lambda x: x + offset, 1)
    assert isinstance(future, cf.Future) and future.result(timeout=60) == 11
    assert pool.call(pow, 2, 5) == 32
    assert list(pool.map(lambda x: x * x, range(6))) == [0, 1, 4, 9, 16, 25]
    assert sorted(pool.map(abs, [-3, 2, -1], ordered=False)) == [1, 2, 3]


def test_errors_come_back_the_same_way(pool):
    with pytest.raises(RemoteError) as info:
        pool.call(fail, 7)
    assert info.value.remote_type == "ValueError" and "bad 7" in str(info.value)
    with pytest.raises(TaskTimeout):
        pool.call(time.sleep, 5, timeout=0.5)
    assert pool.call(abs, -1) == 1  # the pool goes on


@pytest.mark.parametrize("factory", [Counter, lambda: Counter(5)], ids=["class", "lambda"])
def test_sessions_store_build_call_and_find_objects(pool, factory):
    with pool.session() as session:
        assert isinstance(session, PoolSession)
        session.store("c", factory)  # a class or a function is called in the worker
        first = session.call("c.bump")
        assert session.call("c.bump", by=2) == first + 2
        assert session.submit(lambda: stored("c").n).result(timeout=60) == first + 2
        session.store("plain", {"k": 1})  # any other object is kept as it is
        assert session.submit(lambda: stored("plain")["k"]).result(timeout=60) == 1
