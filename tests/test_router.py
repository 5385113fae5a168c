"""The router: native/pool decisions, fallback, overrides and clear errors."""

import pytest

from dspex_lab import telemetry
from dspex_lab.errors import RoutingError
from dspex_lab.router import Router


class FakePool:
    """A pool stand-in that runs in-process and records what it ran."""

    kind = "pool"

    def __init__(self):
        self.ran = []

    def call(self, fn, *args, timeout=None, **kwargs):
        self.ran.append(fn.__name__)
        return fn(*args, **kwargs)


@pytest.fixture
def pool(monkeypatch):
    fake = FakePool()
    monkeypatch.setattr("dspex_lab.workers.get_pool", lambda name="general": fake, raising=False)
    return fake


def double_native(x):
    return 2 * x


def double_pool(x):
    return 2 * x + 1000  # distinguishable from native


def test_native_preferred_when_registered():
    router = Router()
    router.register("double", "native", double_native)
    assert router.call("double", 21) == 42
    assert router.plan("double").implementation == "native"


def test_pool_when_only_pool(pool):
    router = Router()
    router.register("double", "pool", double_pool)
    assert router.call("double", 1) == 1002
    assert pool.ran == ["double_pool"]
    route = router.plan("double")
    assert (route.implementation, route.pool) == ("pool", "general")


def test_can_handle_sends_other_cases_to_the_pool(pool):
    router = Router()
    router.register("double", "native", double_native, can_handle=lambda x: x < 10)
    router.register("double", "pool", double_pool)
    assert router.call("double", 3) == 6
    assert router.call("double", 30) == 1060
    assert router.plan("double", 30).reason == "native cannot handle it"


def test_native_declining_falls_back_to_pool(pool):
    def picky(x):
        if x > 5:
            raise NotImplementedError("too big")
        return -x

    router = Router()
    router.register("neg", "native", picky)
    router.register("neg", "pool", double_pool)
    result, route = router.call_routed("neg", 9)
    assert result == 1018
    assert route.implementation == "pool"
    assert "too big" in route.reason


def test_forced_native_does_not_fall_back(pool):
    def declines(x):
        raise NotImplementedError("never")

    router = Router()
    router.register("op", "native", declines)
    router.register("op", "pool", double_pool)
    with pytest.raises(NotImplementedError):
        router.call("op", 1, implementation="native")
    assert router.call("op", 1, implementation="pool") == 1002


def test_unknown_operation_lists_what_exists():
    router = Router()
    router.register("alpha", "native", double_native)
    router.register("beta", "native", double_native)
    with pytest.raises(RoutingError, match=r"Unknown operation 'gamma'.*alpha, beta"):
        router.call("gamma", 1)


def test_missing_implementation_is_a_clear_error():
    router = Router()
    router.register("alpha", "native", double_native)
    with pytest.raises(RoutingError, match="has no 'pool' implementation"):
        router.call("alpha", 1, implementation="pool")
    with pytest.raises(RoutingError, match="Unknown implementation 'gpu'"):
        router.register("alpha", "gpu", double_native)


def test_every_decision_is_a_telemetry_event():
    router = Router()
    router.register("double", "native", double_native)
    seen = []
    unsubscribe = telemetry.subscribe(seen.append)
    try:
        router.call("double", 2)
        with pytest.raises(TypeError):
            router.call("double")  # missing argument: the error is recorded, then raised
    finally:
        unsubscribe()
    routes = [e for e in seen if e.kind == "router.route"]
    assert [e.fields["route"] for e in routes] == ["native", "native"]
    assert routes[0].fields["error"] is None and routes[1].fields["error"] == "TypeError"
    assert routes[0].fields["duration_ms"] >= 0


def test_distributed_kind_comes_from_the_pool(monkeypatch):
    class Dist(FakePool):
        kind = "distributed"

    fake = Dist()
    monkeypatch.setattr("dspex_lab.workers.get_pool", lambda name="general": fake, raising=False)
    router = Router()
    router.register("double", "pool", double_pool)
    assert router.plan("double").implementation == "distributed"
    assert router.call("double", 1, implementation="distributed") == 1002


def test_builtin_operations_are_registered_before_any_call():
    from dspex_lab.router import get_router

    names = set(get_router().operations())
    assert {"predict", "chain_of_thought", "react", "run", "optimize", "metric.f1",
            "template.render"} <= names
    assert get_router().plan("metric.f1").implementation == "native"
