"""``WorkerPool``: long-lived Python worker processes that import DSPy once and stay warm.

    >>> pool = WorkerPool("general", size=2)
    >>> pool.call(pow, 2, 10)
    1024
    >>> list(pool.map(str.upper, ["a", "b"]))
    ['A', 'B']

How it works: a zygote process (``_zygote``) imports the ``preload`` modules once and forks
workers on request, so N workers are warm in about the time of one ``import dspy``. One
dispatcher thread in the kernel (``_dispatch``) waits on the worker sockets, the zygote and a
wake pipe; it hands queued tasks to idle workers, sets futures, and enforces timeouts, retries,
recycling and health pings. A task submitted while a worker is idle is sent straight from the
calling thread. Workers talk to the kernel over Unix socket pairs only (no TCP port).

Guarantees:

- A worker that dies while running a task is replaced and the task retried on another worker,
  at most ``max_attempts`` runs in all; then the future raises ``WorkerCrashed`` naming the
  task, the exit code or signal and the likely causes.
- A task running past ``timeout`` (per call) or ``task_timeout`` (pool default), counted from
  when it starts, raises ``TaskTimeout``; its worker is killed and replaced.
- Back-pressure: at most ``max_queue`` tasks wait in the queue; ``submit`` then blocks until a
  task leaves the queue (Ctrl-C interrupts the wait). With ``queue_timeout`` set it raises
  ``PoolError`` after waiting that long instead.
- Ctrl-C in ``call``/``map`` cancels their queued and running tasks and returns at once: the
  worker gets a SIGINT aimed at that task (so it stays warm); if the task does not stop within
  ``cancel_grace`` seconds, the worker is killed and replaced. Cancelled futures raise
  ``TaskCancelled``. The pool stays usable.
- Workers recycle after ``max_tasks_per_worker`` tasks or above ``max_rss_mb`` of memory.
- Workers and zygotes exit when the kernel exits, even on SIGKILL (``PR_SET_PDEATHSIG`` plus
  watchdogs), on ``shutdown()`` and at interpreter exit.

Telemetry (``dspex_lab.telemetry``): ``pool.task_finished`` for every task (task id, name,
pool, worker pid, duration_ms, queue_ms, error); with ``task_events="all"`` also
``pool.task_queued`` and ``pool.task_started``; none per task with ``task_events=False`` (each
event costs a few microseconds of kernel time: measured in ``bench/bench_pool.py``). Always:
``pool.queue_depth`` (at most 4 a second), ``pool.worker_started/died/restarted/recycled/
retired``, ``pool.zygote_ready/died``, ``pool.session_checkout/checkin``, ``pool.broken``.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import itertools
import math
import os
import queue
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError, PoolError, TaskCancelled
from dspex_lab.workers import worker as _wire
from dspex_lab.workers._dispatch import Dispatcher
from dspex_lab.workers._functions import dump_fn, fn_name
from dspex_lab.workers._lifecycle import Lifecycle
from dspex_lab.workers._scheduling import Scheduling
from dspex_lab.workers._task import Task, TaskFuture, WorkerHandle

__all__ = ["WorkerPool", "live_pools", "shutdown_live_pools"]

_LIVE_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def live_pools() -> list[WorkerPool]:
    """Every pool of this process that is not shut down yet."""
    return [p for p in list(_LIVE_POOLS)
            if p._pid == os.getpid() and p._state in ("new", "running", "closing")]


class WorkerPool(Dispatcher, Scheduling, Lifecycle):
    """A pool of warm worker processes; the module docstring lists its guarantees.

    ``name`` labels telemetry and errors. ``size``: workers (default: one per CPU).
    ``env``: extra environment variables of the workers (set before ``preload``, so
    ``OMP_NUM_THREADS`` works). ``preload``: modules imported once in the zygote and inherited
    warm. ``max_tasks_per_worker`` / ``max_rss_mb``: recycle a worker after that many tasks or
    above that resident memory. ``task_timeout``: default per-task timeout in seconds.
    ``max_queue``: tasks that may wait before ``submit`` blocks (``queue_timeout``: then raise
    ``PoolError`` after that many seconds). ``max_attempts``: runs of a task whose worker dies.
    ``start="eager"`` starts the processes now, in the background; ``"lazy"`` on first use.
    ``cancel_grace``: seconds a cancelled task has to stop before its worker is killed.
    ``health_interval``: seconds between pings of idle workers. ``task_events``: see above.
    ``relay_output``: what tasks print comes back and is printed where the result is collected
    (a notebook cell), not on the worker's terminal.

    >>> pool = WorkerPool("optimizer", size=1, env={"OMP_NUM_THREADS": "1"})
    >>> pool.submit(sum, [1, 2, 3], timeout=10).result()
    6
    """

    kind = "pool"

    def __init__(self, name: str = "general", size: int | None = None,
                 env: dict[str, str] | None = None, preload: Iterable[str] = ("dspy",),
                 max_tasks_per_worker: int | None = None, max_rss_mb: float | None = None,
                 task_timeout: float | None = None, max_queue: int = 10_000,
                 max_attempts: int = 2, start: str = "lazy", *,
                 queue_timeout: float | None = None, cancel_grace: float = 0.5,
                 health_interval: float = 10.0, task_events: bool | str = True,
                 relay_output: bool = True) -> None:
        if start not in ("lazy", "eager"):
            raise ConfigurationError(f"start={start!r} is not valid; use 'lazy' or 'eager'.")
        if task_events not in (True, False, "all"):
            raise ConfigurationError(f"task_events={task_events!r} is not valid; use True "
                                     "(task_finished events), 'all' or False.")
        self.name = str(name)
        self.size = _positive_int("size", (os.cpu_count() or 1) if size is None else size)
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.preload = (preload,) if isinstance(preload, str) else tuple(preload)
        self.max_tasks_per_worker = (None if max_tasks_per_worker is None else
                                     _positive_int("max_tasks_per_worker", max_tasks_per_worker))
        self.max_rss_mb = max_rss_mb
        self.task_timeout = task_timeout
        self.max_queue = _positive_int("max_queue", max_queue)
        self.max_attempts = _positive_int("max_attempts", max_attempts)
        self.queue_timeout = queue_timeout
        self.cancel_grace = cancel_grace
        self.health_interval = health_interval
        self.task_events = task_events
        self.relay_output = bool(relay_output)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._out: list[tuple[Any, Any, Any]] = []  # settlements and events, run unlocked
        self._senders: list[WorkerHandle] = []  # workers with frames to write, written unlocked
        self._queue: deque[Task] = deque()
        self._queued = 0  # live tasks in _queue (cancelled ones are skipped when popped)
        self._producers = 0  # threads blocked in submit() on a full queue
        self._workers: list[WorkerHandle] = []
        self._by_fd: dict[int, WorkerHandle] = {}
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._zygote: Any = None
        self._zygote_failures = 0
        self._start_failures = 0
        self._state = "new"  # new | running | closing | closed | broken
        self._broken: str | None = None
        self._thread: threading.Thread | None = None
        self._poller = select.poll()
        self._wake_r, self._wake_w = -1, -1
        self._woken = False
        self._poll_until = math.inf
        self._crashes: list[tuple[float, Task, int | None]] = []
        self._exit_codes: dict[int, int] = {}
        self._next_health = time.monotonic() + health_interval
        self._depth_at = (0.0, 0)
        self._task_ms: float | None = None  # moving average of task durations (prefetching)
        self.stats = {"tasks_done": 0, "failed": 0, "cancelled": 0, "timeouts": 0,
                      "crashes": 0, "retries": 0, "restarts": 0, "recycled": 0}
        _LIVE_POOLS.add(self)
        if start == "eager":
            with self._locked():
                self._ensure_started()

    def __repr__(self) -> str:
        return f"<WorkerPool {self.name!r} size={self.size} state={self._state}>"

    # -- public API --------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` in a worker; returns a ``concurrent.futures.Future``.

        ``fn`` is cloudpickled, so functions and closures defined in a notebook work.
        ``timeout`` (seconds, counted from when the task starts) overrides ``task_timeout``.

        >>> pool.submit(divmod, 7, 2).result()
        (3, 1)
        """
        msg = {"op": "call", "fb": dump_fn(fn), "a": list(args), "k": kwargs}
        task = self._new_task(fn_name(fn), msg, timeout)
        self._enqueue(task)
        return task.future  # type: ignore[return-value]

    def call(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None,
             **kwargs: Any) -> Any:
        """Run ``fn`` in a worker and wait for its result; Ctrl-C cancels it at once.

        >>> pool.call(len, "abc")
        3
        """
        return self._wait(self.submit(fn, *args, timeout=timeout, **kwargs))

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], timeout: float | None = None,
            ordered: bool = True) -> Iterator[Any]:
        """``fn(item)`` for every item, in workers; returns an iterator of results.

        Results come in input order (``ordered=True``) or as they finish. Up to ``max_queue``
        tasks are submitted at once; the rest follow as results are consumed. Ctrl-C, an error
        or leaving the loop early cancels the tasks that are left.

        >>> list(pool.map(abs, [-1, -2]))
        [1, 2]
        """
        token = next(self._tokens)
        fn_def = _wire.pack({"op": "def", "fk": token, "fb": dump_fn(fn)})
        name = fn_name(fn)
        items = iter(iterable)
        pending: deque[TaskFuture] = deque()
        done_q: queue.SimpleQueue[TaskFuture] | None = None if ordered else queue.SimpleQueue()

        def submit_next() -> bool:
            for item in items:
                task = self._new_task(name, {"op": "call", "fk": token, "a": [item]}, timeout,
                                      fn_token=token, fn_def=fn_def)
                if done_q is not None:
                    task.future.add_done_callback(done_q.put)  # type: ignore[union-attr]
                pending.append(task.future)  # type: ignore[arg-type]
                self._enqueue(task)
                return True
            return False

        try:
            while len(pending) < self.max_queue and submit_next():
                pass
        except BaseException:
            self._cancel([f._task for f in pending], "the map was interrupted")
            raise
        return self._results(pending, submit_next, done_q)

    def ready(self, timeout: float | None = None) -> bool:
        """Start the workers if needed and wait until all ``size`` of them are warm.

        >>> WorkerPool(size=2).ready(timeout=30)
        True
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._locked():
            self._check_usable()
            self._ensure_started()
            while sum(1 for w in self._workers if w.live and w.state != "starting") < self.size:
                left = None if deadline is None else deadline - time.monotonic()
                if self._state in ("broken", "closed") or (left is not None and left <= 0):
                    return False
                self._cond.wait(left)
            return True

    def resize(self, n: int) -> None:
        """Grow or shrink the pool to ``n`` workers (busy workers leave when their task ends;
        workers holding sessions leave when their sessions close).

        >>> pool.resize(4)
        """
        with self._locked():
            self._check_usable()
            self.size = _positive_int("size", n)
            if self._thread is not None:
                self._wake()

    def status(self) -> dict[str, Any]:
        """A snapshot: name, size, alive, busy, queued, tasks_done, restarts... and per worker
        pid, rss_mb, tasks, state.

        >>> pool.status()["alive"]
        2
        """
        with self._locked():
            rows = [{"pid": w.pid, "state": "retiring" if w.retire and w.live else w.state,
                     "tasks": w.tasks, "sessions": len(w.sessions),
                     "running": w.inflight[0].name if w.inflight else None, "rss_mb": None}
                    for w in self._workers]
            zyg = self._zygote
            out = {"name": self.name, "kind": self.kind, "state": self._state, "size": self.size,
                   "alive": sum(1 for r in rows if r["state"] in ("idle", "busy", "retiring")),
                   "busy": sum(1 for r in rows if r["state"] == "busy"),
                   "queued": self._queued + sum(max(0, len(w.inflight) - 1) + len(w.pinned)
                                                for w in self._workers), **self.stats,
                   "zygote_pid": zyg.pid if zyg else None, "preload": list(self.preload),
                   "preload_seconds": zyg.import_seconds if zyg else None,
                   "preload_errors": list(zyg.preload_errors) if zyg else [],
                   "broken": self._broken, "workers": rows}
        for row in rows:
            row["rss_mb"] = _rss_mb(row["pid"])
        return out

    def session(self, timeout: float | None = None) -> Any:
        """Pin one worker; objects stored in the session live there until it closes.

        >>> with pool.session() as s:
        ...     s.store("counter", Counter)      # a class or function is called in the worker
        ...     s.call("counter.increment")
        1
        """
        from dspex_lab.workers.session import Session

        return Session(self, timeout=timeout)

    def shutdown(self, wait: bool = True, cancel_futures: bool = True) -> None:
        """Stop the pool. ``cancel_futures`` cancels queued and running tasks (their futures
        raise ``TaskCancelled``); otherwise they finish first. ``wait`` blocks until every
        worker and the zygote have exited.

        >>> pool.shutdown()
        """
        if os.getpid() != self._pid:
            return
        with self._locked():
            thread = self._thread
            if thread is None:
                self._state = "closed" if self._state != "broken" else self._state
                return
            if self._state in ("new", "running"):
                self._state = "closing"
            if cancel_futures:
                self._cancel_all(TaskCancelled(
                    f"The task was cancelled because pool {self.name!r} was shut down."))
            self._cond.notify_all()
            self._wake()
        if wait and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # -- submitting --------------------------------------------------------------------------

    def _locked(self) -> _Locked:
        """``with self._locked():`` holds the lock, then runs queued callbacks unlocked."""
        return _Locked(self)

    def _flush(self) -> None:
        with self._lock:
            out, self._out = self._out, []
            senders, self._senders = self._senders, []
        for w in dict.fromkeys(senders):
            w.write_pending()
        for task, kind, fields in out:  # events first: a finished task's event precedes
            if task is None:            # what its waiter does next
                telemetry.emit(kind, **fields)
        for task, value, exc in out:
            fut = task.future if task is not None else None
            if fut is not None:
                with contextlib.suppress(cf.InvalidStateError):
                    fut.set_result(value) if exc is None else fut.set_exception(exc)

    def _new_task(self, name: str, msg: dict[str, Any], timeout: float | None, *,
                  fn_token: int | None = None, fn_def: bytes | None = None,
                  session: Any = None, kind: str = "task") -> Task:
        task_id = next(self._ids)
        msg["id"] = task_id
        if kind == "task" and self.relay_output:
            msg["o"] = 1
        payload = _wire.pack(msg)
        task = Task(task_id, name, payload, self.task_timeout if timeout is None else timeout,
                    size=len(payload), fn_token=fn_token, fn_def=fn_def, session=session,
                    kind=kind)
        if _wire.is_shm_frame(payload):
            task.msg = msg  # a shared-memory frame is read once: keep what a retry re-packs
        if kind == "task":
            task.future = TaskFuture(self, task)
        return task

    def _enqueue(self, task: Task) -> None:
        """Send ``task`` to a worker that can take it now, else queue it (back-pressure)."""
        try:
            with self._locked():
                self._check_usable()
                if self._queued >= self.max_queue:
                    self._wait_for_room()
                self._ensure_started()
                if self.task_events == "all":
                    self._event("pool.task_queued", task=task.id, name=task.name)
                idle = None if self._queue else self._idle_worker(task)
                if idle is not None:
                    self._send(idle, task)
                else:
                    self._queue.append(task)
                    self._queued += 1
        except BaseException:
            self._abandon(task)
            raise

    def _abandon(self, task: Task) -> None:
        """Undo a submit interrupted half-way (Ctrl-C can strike between any two bytecodes):
        the task is cancelled wherever it got to; a worker it may have been sent to half-way
        is replaced."""
        with self._locked():
            if task.done:
                return
            task.done = task.cancelled = True
            self._settle(task, exc=TaskCancelled(f"Task {task.id} ({task.name}) was cancelled "
                                                 "while it was being submitted."))
            if task in self._queue:
                self._queue.remove(task)
            self._queued = sum(1 for t in self._queue if not t.done)
            for w in self._workers:
                if task in w.inflight:
                    self._kill(w, "interrupted while a task was being sent to it")

    def _wait_for_room(self) -> None:
        if threading.current_thread() is self._thread:
            raise PoolError(f"The queue of pool {self.name!r} is full ({self.max_queue} tasks) "
                            "and submit() was called from the pool's own thread (a done "
                            "callback); submit from another thread.")
        deadline = None if self.queue_timeout is None else time.monotonic() + self.queue_timeout
        self._producers += 1
        try:
            while self._queued >= self.max_queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise PoolError(
                        f"The queue of pool {self.name!r} stayed full ({self.max_queue} tasks) "
                        f"for {self.queue_timeout:g} s. Wait for results before submitting "
                        "more, or raise max_queue / queue_timeout.")
                self._cond.wait(left)
                self._check_usable()
        finally:
            self._producers -= 1

    def _wait(self, fut: TaskFuture) -> Any:
        try:
            return fut.result()
        except KeyboardInterrupt:
            self._cancel([fut._task], "the call was interrupted (KeyboardInterrupt)")
            raise

    def _results(self, pending: deque[TaskFuture], submit_next: Callable[[], bool],
                 done_q: queue.SimpleQueue[TaskFuture] | None) -> Iterator[Any]:
        try:
            while pending:
                if done_q is None:
                    value = pending[0].result()
                    pending.popleft()
                else:
                    fut = done_q.get()
                    pending.remove(fut)
                    value = fut.result()
                submit_next()
                yield value
        except BaseException as exc:
            why = ("the map was interrupted (KeyboardInterrupt)"
                   if isinstance(exc, KeyboardInterrupt) else "the map stopped early")
            self._cancel([f._task for f in pending], why)
            raise


class _Locked:
    __slots__ = ("pool",)

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def __enter__(self) -> None:
        self.pool._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.pool._lock.release()
        if self.pool._out or self.pool._senders:
            self.pool._flush()


def _positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what}={value!r} is not valid; use a whole number >= 1.")
    return value


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        import psutil

        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except Exception:
        return None


def shutdown_live_pools(wait: bool = True) -> None:
    """Shut down every pool of this process, cancelling their tasks (runs at exit)."""
    for pool in live_pools():
        pool.shutdown(wait=wait, cancel_futures=True)


def _after_fork_in_child() -> None:
    for pool in list(_LIVE_POOLS):
        pool._thread = None  # threads do not survive fork; _check_usable refuses the pool


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown_live_pools)
