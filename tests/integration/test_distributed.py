"""The Dask backend: same pool API and error semantics as local pools, on a LocalCluster."""

import time

import pytest

distributed = pytest.importorskip("distributed")

from dspex_lab.distributed import DaskPool  # noqa: E402
from dspex_lab.errors import RemoteError, TaskTimeout, ValidationError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def pool(client):
    return DaskPool(client, name="general")


def square(x):
    return x * x


def boom(x):
    raise ValueError(f"bad value {x}")


def slow(seconds):
    time.sleep(seconds)
    return seconds


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self, by=1):
        self.n += by
        return self.n


def test_call_and_map(pool):
    assert pool.kind == "distributed"
    assert pool.call(square, 7) == 49
    assert list(pool.map(square, range(10))) == [i * i for i in range(10)]
    assert sorted(pool.map(square, range(5), ordered=False)) == [0, 1, 4, 9, 16]


def test_notebook_style_closure_runs_remotely(pool):
    offset = 100
    assert pool.call(lambda x: x + offset, 1) == 101


def test_remote_error_carries_the_worker_traceback(pool):
    with pytest.raises(RemoteError) as info:
        pool.call(boom, 3)
    assert info.value.remote_type == "ValueError"
    assert "bad value 3" in str(info.value)
    assert "boom" in info.value.remote_traceback


def test_dspex_errors_keep_their_type(pool):
    def invalid():
        raise ValidationError([("n", "expected int")])

    with pytest.raises(ValidationError, match="expected int"):
        pool.call(invalid)


def test_timeout_cancels_and_pool_recovers(pool):
    with pytest.raises(TaskTimeout, match=r"timeout of 0\.3 s"):
        pool.call(slow, 5, timeout=0.3)
    assert pool.call(square, 3) == 9


def test_session_keeps_state_on_one_worker(pool):
    with pool.session() as s:
        s.store("counter", Counter)
        assert [s.call("counter.bump") for _ in range(3)] == [1, 2, 3]
        assert s.call("counter.bump", by=10) == 13


def test_status_has_the_local_pool_shape(pool):
    pool.call(square, 2)
    status = pool.status()
    assert status["size"] == 2 and status["alive"] == 2
    assert {"name", "busy", "queued", "tasks_done", "restarts", "workers"} <= set(status)
    assert status["tasks_done"] >= 1


def test_configure_backend_dask_routes_every_pool_there(client):
    import dspex_lab
    from dspex_lab.router import get_router
    from dspex_lab.workers import get_pool

    dspex_lab.configure(backend="dask", client=client)
    try:
        pool = get_pool("general")
        assert pool.kind == "distributed" and get_pool("general") is pool
        assert get_router().plan("predict", implementation="pool").implementation == "distributed"
        assert pool.call(square, 4) == 16
    finally:
        dspex_lab.configure(backend="local")
    assert getattr(get_pool("general"), "kind", "pool") == "pool"
