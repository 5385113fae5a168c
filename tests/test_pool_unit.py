"""WorkerPool pieces that need no worker process: validation, messages, the registry."""

import signal
import threading

import pytest

import dspex_lab.workers as workers
from dspex_lab.errors import ConfigurationError, PoolError
from dspex_lab.workers import WorkerPool, configure_pools, get_pool, pool_config, pool_status
from dspex_lab.workers._task import describe_exit, likely_causes
from dspex_lab.workers.pool import dump_fn, fn_name


def test_exit_descriptions_name_the_signal_or_code():
    assert describe_exit(-signal.SIGKILL) == "killed by signal SIGKILL (9)"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exit status unknown"
    assert "OOM" in likely_causes(-signal.SIGKILL)
    assert "C extension" in likely_causes(-signal.SIGSEGV)
    assert "os._exit" in likely_causes(3)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"size": 0}, "size=0"),
    ({"size": 1.5}, "size=1.5"),
    ({"max_queue": -1}, "max_queue=-1"),
    ({"max_attempts": 0}, "max_attempts=0"),
    ({"start": "now"}, "start='now'"),
])
def test_bad_options_raise_configuration_errors_naming_the_value(kwargs, named):
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        WorkerPool(**kwargs)


def test_an_unstarted_pool_starts_nothing_and_refuses_work_after_shutdown():
    before = threading.active_count()
    pool = WorkerPool("idle", size=2, preload=())
    assert pool.status()["alive"] == 0 and pool.status()["zygote_pid"] is None
    pool.shutdown()
    assert threading.active_count() == before
    with pytest.raises(PoolError, match="shut down"):
        pool.submit(len, "abc")


def test_functions_that_cannot_travel_are_refused_with_their_name():
    lock = threading.Lock()

    def uses_lock():
        return lock.locked()

    with pytest.raises(TypeError, match="uses_lock cannot be sent to a worker"):
        dump_fn(uses_lock)
    with pytest.raises(TypeError, match="not callable"):
        dump_fn(42)
    assert fn_name(len) == "len"
    assert fn_name(test_exit_descriptions_name_the_signal_or_code).endswith(
        "test_exit_descriptions_name_the_signal_or_code")


def test_registry_validates_and_remembers_pool_options():
    with pytest.raises(ConfigurationError, match=r"Unknown option.*'sise'.*valid options"):
        configure_pools({"mine": {"sise": 2}})
    with pytest.raises(ConfigurationError, match="size=0"):
        configure_pools({"mine": {"size": 0}})
    with pytest.raises(ConfigurationError, match="no pool named 'nope'"):
        get_pool("nope")
    configure_pools({"unit-mine": {"size": 1, "preload": ()}})
    try:
        assert pool_config("unit-mine") == {"size": 1, "preload": ()}
        assert pool_config("optimizer")["env"]["OMP_NUM_THREADS"] == "1"
        pool = get_pool("unit-mine")
        assert get_pool("unit-mine") is pool and pool.size == 1
        configure_pools({"unit-mine": {"size": 3}})  # applied in place
        assert get_pool("unit-mine") is pool and pool.size == 3
        assert "unit-mine" in [s["name"] for s in pool_status()]
    finally:
        configure_pools({"unit-mine": None})
    with pytest.raises(ConfigurationError):
        get_pool("unit-mine")


def test_package_exports_match_all():
    for name in workers.__all__:
        assert getattr(workers, name) is not None
    assert set(workers.__all__) >= {"WorkerPool", "get_pool", "configure_pools",
                                    "pool_status", "shutdown_all"}
