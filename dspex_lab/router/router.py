"""The router: picks native, pool or distributed for each call and records why."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import RoutingError
from dspex_lab.router.registry import Operation, Registry

_perf = time.perf_counter


@dataclass(frozen=True, slots=True)
class Route:
    """Where one call goes: ``implementation`` is native, pool or distributed."""

    operation: str
    implementation: str
    reason: str
    pool: str | None = None


class Router:
    """Routes operations to their implementations.

    >>> router = Router()
    >>> router.register("double", "native", lambda x: 2 * x)
    >>> router.call("double", 21)
    42
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()

    def register(self, name: str, implementation: str, fn: Callable[..., Any], **options: Any
                 ) -> Operation:
        """Register an implementation; see ``Registry.register``."""
        return self.registry.register(name, implementation, fn, **options)

    def operations(self) -> list[str]:
        """The names of every registered operation."""
        return self.registry.names()

    def plan(self, operation: str, *args: Any, implementation: str | None = None,
             pool: str | None = None, **kwargs: Any) -> Route:
        """Decide where a call would go, without running it."""
        op = self.registry.get(operation)
        return self._decide(op, args, kwargs, implementation, pool)

    def call(self, operation: str, *args: Any, implementation: str | None = None,
             pool: str | None = None, timeout: float | None = None, **kwargs: Any) -> Any:
        """Run ``operation`` where the router decides (or where ``implementation`` says).

        A native implementation may decline a call by raising ``NotImplementedError``; the
        call then falls back to the pool. Every decision is a ``router.route`` event.
        """
        return self.call_routed(operation, *args, implementation=implementation, pool=pool,
                                timeout=timeout, **kwargs)[0]

    def call_routed(self, operation: str, *args: Any, implementation: str | None = None,
                    pool: str | None = None, timeout: float | None = None, **kwargs: Any
                    ) -> tuple[Any, Route]:
        """Like ``call``, and also return the ``Route`` the call finally took."""
        start = _perf()
        op = self.registry.get(operation)
        route = self._decide(op, args, kwargs, implementation, pool)
        error: str | None = None
        try:
            if route.implementation == "native":
                try:
                    return op.implementations["native"](*args, **kwargs), route
                except NotImplementedError as exc:
                    if implementation == "native" or "pool" not in op.implementations:
                        raise
                    pool_name = pool or op.pool
                    route = Route(operation, self._remote_kind(pool_name),
                                  f"native declined: {exc}", pool_name)
            return self._run_remote(op, route, args, kwargs, timeout), route
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            telemetry.emit("router.route", operation=operation, route=route.implementation,
                           reason=route.reason, pool=route.pool,
                           duration_ms=(_perf() - start) * 1e3, error=error)

    def _decide(self, op: Operation, args: tuple, kwargs: dict, implementation: str | None,
                pool: str | None) -> Route:
        impls = op.implementations
        pool_name = pool or op.pool
        if implementation is not None:
            wanted = "pool" if implementation == "distributed" else implementation
            if wanted not in impls:
                have = ", ".join(sorted(impls)) or "none"
                raise RoutingError(
                    f"Operation {op.name!r} has no {implementation!r} implementation "
                    f"(it has: {have})."
                )
            kind = "native" if wanted == "native" else self._remote_kind(pool_name)
            return Route(op.name, kind, "requested", None if kind == "native" else pool_name)
        if "native" in impls and (op.prefer == "native" or "pool" not in impls):
            if op.can_handle is None:
                return Route(op.name, "native", "native implementation")
            if op.can_handle(*args, **kwargs):
                return Route(op.name, "native", "native can handle it")
            if "pool" not in impls:
                return Route(op.name, "native", "native only")
            return Route(op.name, self._remote_kind(pool_name), "native cannot handle it",
                         pool_name)
        if "pool" in impls:
            return Route(op.name, self._remote_kind(pool_name), "runs DSPy in a worker",
                         pool_name)
        return Route(op.name, "native", "native implementation")

    @staticmethod
    def _remote_kind(pool_name: str) -> str:
        from dspex_lab.workers import get_pool

        return getattr(get_pool(pool_name), "kind", "pool")

    @staticmethod
    def _run_remote(op: Operation, route: Route, args: tuple, kwargs: dict,
                    timeout: float | None) -> Any:
        from dspex_lab.workers import get_pool

        fn = op.implementations["pool"]
        return get_pool(route.pool or op.pool).call(fn, *args, timeout=timeout, **kwargs)


_ROUTER = Router()
_BUILTIN_MODULES = ("dspex_lab.calls", "dspex_lab.native", "dspex_lab.optimize",
                    "dspex_lab.batch")
_builtins_loaded = False


def get_router() -> Router:
    """The process-wide router that every public operation goes through (with the built-in
    operations — predict, chain_of_thought, react, metrics, templates, optimize — registered)."""
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
    return _ROUTER


def register(name: str, implementation: str, fn: Callable[..., Any], **options: Any) -> Operation:
    """Register an implementation on the process-wide router.

    >>> register("shout", "native", lambda text: text.upper())
    """
    return _ROUTER.register(name, implementation, fn, **options)
