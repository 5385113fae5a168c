"""The distributed backend: the worker-pool API on a Dask cluster.

When one machine is not enough, point dspex_lab at a Dask scheduler; every pool then runs its
tasks there with the same API, telemetry and error semantics as a local ``WorkerPool``::

    dspex_lab.configure(backend="dask", address="tcp://scheduler:8786")
    # or: dspex_lab.configure(backend="dask", client=distributed.Client(...))

    >>> pool = DaskPool(client)                    # what get_pool() returns on this backend
    >>> pool.call(len, "abc")
    3
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import (
    DspexError,
    PoolError,
    RemoteError,
    TaskCancelled,
    TaskTimeout,
    WorkerCrashed,
)
from dspex_lab.workers.session import FACTORIES

_task_ids = itertools.count(1)
_STORE: dict[tuple[str, str], Any] = {}  # lives in each Dask worker: session objects


def _run_task(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Runs on the Dask worker: call ``fn`` and turn foreign errors into ``RemoteError``."""
    try:
        return fn(*args, **kwargs)
    except DspexError:
        raise
    except Exception as exc:
        raise RemoteError(f"{type(exc).__name__}: {exc}", type(exc).__name__,
                          traceback.format_exc()) from exc


_SESSION = threading.local()  # in a Dask worker: the session whose task runs in this thread


def in_session() -> bool:
    """True inside a task a ``DaskSession`` submitted (in the Dask worker)."""
    return getattr(_SESSION, "id", None) is not None


def stored(name: str) -> Any:
    """The object the current Dask session stored under ``name`` (``workers.stored``)."""
    try:
        return _STORE[(_SESSION.id, name)]
    except (AttributeError, KeyError):
        raise PoolError(f"Nothing named {name!r} is stored in this session; store it first "
                        "with session.store(name, obj).") from None


def _in_session(session: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    _SESSION.id = session
    try:
        return _run_task(fn, args, kwargs)
    finally:
        _SESSION.id = None


def _store(session: str, name: str, obj: Any, factory: bool) -> None:
    _STORE[(session, name)] = obj() if factory else obj


def _call_stored(session: str, target: str, args: tuple, kwargs: dict) -> Any:
    name, _, method = target.partition(".")
    try:
        obj = _STORE[(session, name)]
    except KeyError:
        raise PoolError(f"Nothing named {name!r} is stored in this session; "
                        "store it first with session.store(name, obj).") from None
    return _in_session(session, getattr(obj, method) if method else obj, args, kwargs)


def _settle(fut: cf.Future, result: Any = None, exc: BaseException | None = None) -> None:
    """Set a future's outcome unless a racing timer or callback already did."""
    with contextlib.suppress(cf.InvalidStateError):
        fut.set_exception(exc) if exc is not None else fut.set_result(result)


def _drop_session(session: str) -> None:
    for key in [k for k in _STORE if k[0] == session]:
        del _STORE[key]


class DaskPool:
    """A pool whose workers are the workers of a Dask cluster (``kind == "distributed"``)."""

    kind = "distributed"

    def __init__(self, client: Any, name: str = "general", task_timeout: float | None = None
                 ) -> None:
        self.client = client
        self.name = name
        self.task_timeout = task_timeout
        self._closed = False
        self._done = 0

    @property
    def size(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def submit(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
               **kwargs: Any) -> cf.Future:
        """Run ``fn(*args, **kwargs)`` on the cluster; returns a ``concurrent.futures.Future``."""
        return self._submit(_run_task, (fn, args, kwargs), timeout, workers=None,
                            label=getattr(fn, "__name__", "task"))

    def _submit(self, fn: Callable[..., Any], args: tuple, timeout: float | None,
                workers: list[str] | None, label: str) -> cf.Future:
        if self._closed:
            raise PoolError(f"Pool {self.name!r} is shut down; get a new one with get_pool().")
        task_id = next(_task_ids)
        outer: cf.Future = cf.Future()
        start = time.perf_counter()
        telemetry.emit("pool.task_queued", pool=self.name, task=task_id, backend="dask")
        pin = {"workers": workers, "allow_other_workers": False} if workers else {}
        fut = self.client.submit(fn, *args, pure=False, **pin)
        limit = timeout if timeout is not None else self.task_timeout
        timer = None
        if limit is not None:
            timer = threading.Timer(limit, self._expire, (fut, outer, task_id, label, limit))
            timer.daemon = True
            timer.start()

        def done(f: Any) -> None:
            if timer is not None:
                timer.cancel()
            if outer.done():
                return
            error = None
            try:
                _settle(outer, f.result())
            except BaseException as exc:  # translate to the local pool's error semantics
                error = type(exc).__name__
                _settle(outer, exc=self._translate(exc, task_id, label))
            self._done += 1
            telemetry.emit("pool.task_finished", pool=self.name, task=task_id, backend="dask",
                           duration_ms=(time.perf_counter() - start) * 1e3, error=error)

        fut.add_done_callback(done)
        outer.dask_future = fut
        return outer

    def _expire(self, fut: Any, outer: cf.Future, task_id: int, label: str, limit: float) -> None:
        if not outer.done():  # the timeout first: cancelling settles the future as cancelled
            _settle(outer, exc=TaskTimeout(
                f"Task {task_id} ({label}) ran past its timeout of {limit:g} s on pool "
                f"{self.name!r} and was cancelled on the cluster."))
            fut.cancel()

    @staticmethod
    def _translate(exc: BaseException, task_id: int, label: str) -> BaseException:
        if isinstance(exc, DspexError):
            return exc
        kind = type(exc).__name__
        if kind == "KilledWorker":
            return WorkerCrashed(
                f"Task {task_id} ({label}) killed its Dask worker on every attempt "
                f"(likely causes: out of memory, a segfault, os._exit): {exc}")
        if kind in ("CancelledError", "FutureCancelledError"):
            return TaskCancelled(f"Task {task_id} ({label}) was cancelled.")
        return RemoteError(f"{kind}: {exc}", kind, "".join(traceback.format_exception(exc)))

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
             **kwargs: Any) -> Any:
        """Run ``fn`` on the cluster and wait; Ctrl-C cancels it."""
        fut = self.submit(fn, *args, timeout=timeout, **kwargs)
        try:
            return fut.result()
        except KeyboardInterrupt:
            self._cancel([fut])
            raise

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], timeout: float | None = None,
            ordered: bool = True) -> Iterator[Any]:
        """``fn`` over ``iterable`` on the cluster; Ctrl-C cancels what is left."""
        futures = [self.submit(fn, item, timeout=timeout) for item in iterable]
        try:
            source = futures if ordered else cf.as_completed(futures)
            for fut in source:
                yield fut.result()
        except BaseException:
            self._cancel(futures)
            raise

    def _cancel(self, futures: list[cf.Future]) -> None:
        for fut in futures:
            if not fut.done():
                fut.dask_future.cancel()
                _settle(fut, exc=TaskCancelled("Cancelled by the user."))

    def ready(self, timeout: float | None = None) -> bool:
        """Wait until the cluster has at least one worker."""
        try:
            self.client.wait_for_workers(1, timeout=timeout)
            return True
        except Exception:
            return False

    def resize(self, n: int) -> None:
        """Scale the cluster, when it can be scaled (``LocalCluster``, ``KubeCluster``...)."""
        cluster = getattr(self.client, "cluster", None)
        if cluster is None:
            raise PoolError("This Dask client has no cluster object to scale; "
                            "scale the cluster where it runs.")
        cluster.scale(n)

    def status(self) -> dict[str, Any]:
        """Pool status in the same shape as ``WorkerPool.status()``."""
        workers = self.client.scheduler_info().get("workers", {})
        processing = self.client.processing()
        busy = sum(1 for tasks in processing.values() if tasks)
        return {
            "name": self.name, "kind": self.kind, "size": len(workers), "alive": len(workers),
            "busy": busy, "queued": sum(len(t) for t in processing.values()),
            "tasks_done": self._done, "restarts": 0,
            "workers": [{"address": addr, "pid": info.get("pid"),
                         "rss_mb": (info.get("metrics", {}).get("memory") or 0) / 2**20,
                         "tasks": len(processing.get(addr, ())), "state": "alive"}
                        for addr, info in workers.items()],
        }

    def session(self) -> DaskSession:
        """Pin one cluster worker; objects stored there live until the session closes."""
        workers = list(self.client.scheduler_info().get("workers", {}))
        if not workers:
            raise PoolError(f"The Dask cluster behind pool {self.name!r} has no workers.")
        return DaskSession(self, workers[0])

    def shutdown(self, wait: bool = True, cancel_futures: bool = True) -> None:
        """Stop using the cluster (the client is closed only if this pool created it)."""
        self._closed = True


class DaskSession:
    """A session pinned to one Dask worker (same API as a local pool session)."""

    def __init__(self, pool: DaskPool, address: str) -> None:
        self.pool = pool
        self.address = address
        self.id = f"s{next(_task_ids)}"

    def _pinned(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool._submit(fn, args, None, [self.address], fn.__name__).result()

    def store(self, name: str, obj: Any) -> None:
        """Keep ``obj`` on the pinned worker (a class or function is called there to build
        it, as in a local session)."""
        self._pinned(_store, self.id, name, obj, isinstance(obj, FACTORIES))

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        """Call a stored object (``"name"``) or one of its methods (``"name.method"``)."""
        return self._pinned(_call_stored, self.id, target, args, kwargs)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future:
        """Run ``fn(*args, **kwargs)`` on this session's Dask worker."""
        return self.pool._submit(_in_session, (self.id, fn, args, kwargs), None,
                                 [self.address], getattr(fn, "__name__", "task"))

    def close(self) -> None:
        """End the session (its worker forgets the stored objects)."""
        self._pinned(_drop_session, self.id)

    def __enter__(self) -> DaskSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_BACKEND: dict[str, Any] = {"client": None, "owned": False, "pools": {}}
_BACKEND_LOCK = threading.Lock()


def use_dask(client: Any = None, address: str | None = None, **cluster_options: Any) -> Any:
    """Send every pool's tasks to a Dask cluster from now on; returns the ``Client``.

    Pass a ``distributed.Client``, a scheduler ``address``, or neither to start a
    ``LocalCluster`` on this machine (``cluster_options`` go to it).
    """
    try:
        import distributed
    except ImportError:
        from dspex_lab.errors import ConfigurationError

        raise ConfigurationError("The Dask backend needs the 'distributed' package: "
                                 "pip install 'dspex-lab[dask]'.") from None
    with _BACKEND_LOCK:
        _close_owned()
        owned = client is None
        if client is None and address is not None:
            client = distributed.Client(address)
        elif client is None:
            opts = {"n_workers": 2, "threads_per_worker": 4, "processes": True,
                    "dashboard_address": None, **cluster_options}
            client = distributed.Client(distributed.LocalCluster(**opts))
        _BACKEND.update(client=client, owned=owned, pools={})
        return client


def use_local() -> None:
    """Go back to local worker pools (closes a cluster that ``use_dask`` started)."""
    with _BACKEND_LOCK:
        _close_owned()
        _BACKEND.update(client=None, owned=False, pools={})


def _close_owned() -> None:
    client = _BACKEND["client"]
    if client is not None and _BACKEND["owned"]:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def backend_pool(name: str) -> DaskPool | None:
    """The ``DaskPool`` for ``name`` when the Dask backend is active, else None."""
    client = _BACKEND["client"]
    if client is None:
        return None
    with _BACKEND_LOCK:
        pools = _BACKEND["pools"]
        if name not in pools:
            pools[name] = DaskPool(client, name=name)
        return pools[name]
