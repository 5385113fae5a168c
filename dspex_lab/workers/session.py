"""Sessions: one worker pinned for a series of calls, with objects stored in it.

    >>> with pool.session() as s:
    ...     s.store("qa", lambda: dspy.Predict("question -> answer"))   # built in the worker
    ...     s.call("qa", question="2 + 2?")                               # the stored object
    ...     s.call("qa.forward", question="3 + 3?")                       # or one of its methods
    ...     s.submit(fn, 1).result()                                      # any fn, same worker

``store(name, obj)`` calls ``obj`` in the worker when it is a class, a function, a lambda or a
``functools.partial`` (use this for things that do not pickle well, such as LM clients);
anything else is pickled and sent as it is. Inside ``s.submit(fn)``, ``fn`` can reach the
stored objects with ``dspex_lab.workers.stored(name)``.

The pinned worker also runs the pool's other tasks when it is idle (workers without sessions
are preferred). If it dies, every pending and later call of the session raises
``WorkerCrashed`` saying so: the stored objects are gone and the session must be reopened.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sys
import types
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import PoolError, WorkerCrashed
from dspex_lab.workers import worker as _worker
from dspex_lab.workers._functions import dump_fn, fn_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from dspex_lab.workers._task import TaskFuture
    from dspex_lab.workers.pool import WorkerPool

__all__ = ["FACTORIES", "Session", "stored"]

_ids = itertools.count(1)
FACTORIES = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
              functools.partial)
"""What ``store`` calls in the worker to build the object (anything else is kept as is)."""



def stored(name: str) -> Any:
    """Inside a session task, on either backend: the object the session stored under ``name``.

    >>> s.store("counter", Counter); s.submit(lambda: stored("counter").n).result()
    """
    dask = sys.modules.get("dspex_lab.distributed")  # loaded in every Dask worker we use
    if _worker._WORKER is None and dask is not None and dask.in_session():
        return dask.stored(name)
    return _worker.stored(name)


class Session:
    """A worker pinned to this session (see the module docstring).

    >>> s = pool.session(); s.store("n", 41); s.submit(lambda: stored("n") + 1).result()
    42
    """

    def __init__(self, pool: WorkerPool, timeout: float | None = None) -> None:
        self.pool = pool
        self.id = f"{pool.name}-s{next(_ids)}"
        self.lost: str | None = None
        self.closed = False
        self.names: list[str] = []
        self._worker = pool._checkout(self, timeout)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "lost" if self.lost else "open"
        return f"<Session {self.id} pid={self.pid} {state} stored={self.names}>"

    @property
    def pid(self) -> int | None:
        """The pinned worker's process id."""
        return self._worker.pid

    def store(self, name: str, obj: Any, timeout: float | None = None) -> None:
        """Keep ``obj`` in the pinned worker under ``name`` (a class or function is called
        there to build it).

        >>> s.store("qa", lambda: dspy.Predict("question -> answer"))
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Session object names must be non-empty strings without dots, "
                             f"not {name!r}; 'qa.forward' in call() means method 'forward'.")
        msg = {"op": "store", "sid": self.id, "name": name, "value": obj,
               "factory": isinstance(obj, FACTORIES)}
        self.pool._wait(self._submit(msg, f"store {name!r}", timeout))
        if name not in self.names:
            self.names.append(name)

    def call(self, target: str, /, *args: Any, timeout: float | None = None,
             **kwargs: Any) -> Any:
        """Call the stored object ``target`` (or ``"name.method"``) with the arguments.

        >>> s.call("qa", question="2 + 2?").answer
        '4'
        """
        msg = {"op": "scall", "sid": self.id, "name": target, "a": list(args), "k": kwargs}
        return self.pool._wait(self._submit(msg, target, timeout))

    def submit(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` on the pinned worker; returns a future.

        >>> s.submit(os.getpid).result() == s.pid
        True
        """
        msg = {"op": "call", "sid": self.id, "fb": dump_fn(fn), "a": list(args), "k": kwargs}
        return self._submit(msg, fn_name(fn), timeout)

    def get(self, name: str, timeout: float | None = None) -> Any:
        """A copy of the stored object ``name``, brought back to the kernel."""
        return self.pool._wait(self.submit(stored, name, timeout=timeout))

    def close(self) -> None:
        """Drop the stored objects and release the worker. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if self.lost is None:
            task = self.pool._new_task("session close", {"op": "sdrop", "sid": self.id}, None,
                                       session=self, kind="control")
            with contextlib.suppress(PoolError, WorkerCrashed):  # gone, and the objects too
                self.pool._enqueue_pinned(self._worker, task)
        self.pool._checkin(self, self._worker)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # called by the pool ----------------------------------------------------------------------

    def lose(self, why: str) -> None:
        """The pinned worker is gone (called by the pool, lock held)."""
        self.lost = why

    def crashed(self, detail: str | None = None) -> WorkerCrashed:
        """The error every call of a lost session raises (``detail`` says how it was lost)."""
        stored_names = ", ".join(repr(n) for n in self.names) or "none"
        return WorkerCrashed(
            f"Session {self.id} of pool {self.pool.name!r} cannot continue: "
            f"{detail or self.lost}. "
            f"The objects stored in it ({stored_names}) are gone; open a new session with "
            "pool.session() and store them again.")

    def _submit(self, msg: dict[str, Any], name: str, timeout: float | None) -> TaskFuture:
        if self.closed:
            raise PoolError(f"Session {self.id} is closed; open a new one with pool.session().")
        if self.lost is not None:
            raise self.crashed()
        task = self.pool._new_task(name, msg, timeout, session=self)
        self.pool._enqueue_pinned(self._worker, task)
        return task.future  # type: ignore[return-value]
