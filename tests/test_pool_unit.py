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


def _notebook_function(source, **scope):
    """Define a function as a notebook cell would (module ``__main__``, its own globals)."""
    namespace = {"__name__": "__main__", **scope}
    exec(source, namespace)
    return namespace["f"], namespace


def test_a_notebook_function_is_pickled_again_when_a_global_it_reads_changes():
    import cloudpickle

    f, scope = _notebook_function("def f(x):\n    return x > THRESHOLD\n", THRESHOLD=0.5)
    first = dump_fn(f)
    assert dump_fn(f) is first  # nothing changed: the cached pickle
    scope["THRESHOLD"] = 0.7
    second = dump_fn(f)
    assert second != first and cloudpickle.loads(second)(0.6) is False


def test_a_notebook_function_reading_a_mutable_global_is_never_cached():
    import cloudpickle

    f, scope = _notebook_function("def f():\n    return CONFIG['model']\n",
                                  CONFIG={"model": "a"})
    assert cloudpickle.loads(dump_fn(f))() == "a"
    scope["CONFIG"]["model"] = "b"  # same dict, new content
    assert cloudpickle.loads(dump_fn(f))() == "b"


def test_closures_and_defaults_are_checked_too():
    import cloudpickle

    def make(n):
        def f(x, scale=2):
            return x * n * scale
        return f

    f = make(3)
    assert dump_fn(f) is dump_fn(f)
    assert cloudpickle.loads(dump_fn(make(4)))(1) == 8

    def g(x, seen=[]):  # noqa: B006 - a mutable default: never cached
        seen.append(x)
        return len(seen)

    g(1)
    assert cloudpickle.loads(dump_fn(g))(0) == 2
    g(2)
    assert cloudpickle.loads(dump_fn(g))(0) == 3
