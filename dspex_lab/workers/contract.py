"""The pool contract: what every backend (``WorkerPool``, Dask's ``DaskPool``) promises, and
all that callers (the router, batch runs, evaluate, optimize) may use.

``tests/test_pool_contract.py`` runs one suite against both backends. In short:

- ``submit(fn, *args, timeout=, **kwargs)`` -> a ``concurrent.futures.Future``; ``call`` waits
  for it; ``map(fn, items, timeout=, ordered=True)`` yields results (in order unless
  ``ordered=False``). Functions and closures defined in a notebook travel (cloudpickle).
- An exception raised by ``fn`` comes back as ``RemoteError`` (its class name in
  ``remote_type``), a dspex_lab error as itself; a task past ``timeout`` fails with
  ``TaskTimeout``.
- ``session()`` pins one worker: ``store(name, obj)`` keeps ``obj`` there (a class, function or
  lambda is called there to build it), ``call("name"|"name.method", ...)`` calls it,
  ``submit(fn)`` runs ``fn`` where ``dspex_lab.workers.stored(name)`` finds the objects;
  ``close()`` forgets them. A session is a context manager.
- ``size`` (workers or slots), ``kind`` (``"pool"`` / ``"distributed"``), ``name``,
  ``status()`` (a dict with at least ``name``, ``kind``, ``size``, ``alive``, ``busy``),
  ``ready(timeout)``, ``resize(n)``, ``shutdown(wait=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

__all__ = ["STATUS_KEYS", "Pool", "PoolSession"]

STATUS_KEYS = ("name", "kind", "size", "alive", "busy")
"""The keys every backend's ``status()`` has."""


@runtime_checkable
class PoolSession(Protocol):
    """One worker pinned for stored objects."""

    def store(self, name: str, obj: Any) -> None: ...
    def call(self, target: str, /, *args: Any, **kwargs: Any) -> Any: ...
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future: ...
    def close(self) -> None: ...
    def __enter__(self) -> PoolSession: ...
    def __exit__(self, *exc: Any) -> None: ...


@runtime_checkable
class Pool(Protocol):
    """A pool of workers that run Python functions (see the module docstring)."""

    name: str
    kind: str

    @property
    def size(self) -> int: ...
    def submit(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> Future: ...
    def call(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None,
             **kwargs: Any) -> Any: ...
    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], timeout: float | None = None,
            ordered: bool = True) -> Iterator[Any]: ...
    def session(self) -> PoolSession: ...
    def status(self) -> dict[str, Any]: ...
    def ready(self, timeout: float | None = None) -> bool: ...
    def resize(self, n: int) -> None: ...
    def shutdown(self, wait: bool = True, cancel_futures: bool = True) -> None: ...
