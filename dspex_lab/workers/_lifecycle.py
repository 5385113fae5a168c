"""The processes of a ``WorkerPool``: starting and stopping its zygote, workers and thread.

Methods run with the pool lock held unless they say otherwise. ``_settle`` and ``_event``
queue a future's outcome or a telemetry event; both run once the lock is released
(``WorkerPool._flush``), because done callbacks and telemetry subscribers are user code that
may call back into the pool.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import signal
import threading
import time
from multiprocessing.connection import Pipe
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import PoolError
from dspex_lab.workers import worker as _wire
from dspex_lab.workers._task import Task, WorkerHandle
from dspex_lab.workers._zygote import Zygote

if TYPE_CHECKING:
    from dspex_lab.workers.pool import WorkerPool

__all__ = ["Lifecycle"]

_EXIT_MSG = _wire.pack({"op": "exit"})


class Lifecycle:
    """Mixin of ``WorkerPool``: processes and the dispatcher thread come and go here."""

    def _settle(self: WorkerPool, task: Task, value: Any = None,
                exc: BaseException | None = None) -> None:
        task.payload, task.msg, task.fn_def = b"", None, None  # futures may live long
        self._out.append((task, value, exc))

    def _event(self: WorkerPool, kind: str, **fields: Any) -> None:
        fields["pool"] = self.name
        self._out.append((None, kind, fields))

    def _check_usable(self: WorkerPool) -> None:
        if os.getpid() != self._pid:
            raise PoolError(f"Pool {self.name!r} belongs to process {self._pid}; a forked "
                            "process cannot use it. Create a new pool in this process.")
        if self._state == "broken":
            raise PoolError(f"Pool {self.name!r} is broken: {self._broken} Create a new pool "
                            "(get_pool() does this for you).")
        if self._state in ("closing", "closed"):
            raise PoolError(f"Pool {self.name!r} is shut down; create a new one "
                            "(get_pool() does this for you).")

    def _ensure_started(self: WorkerPool) -> None:
        if self._thread is not None:
            return
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, select.POLLIN)
        self._state = "running"
        # The zygote is started from this thread: it dies with it (PR_SET_PDEATHSIG).
        self._thread = threading.Thread(target=self._run, name=f"dspex-pool-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _wake(self: WorkerPool) -> None:
        if not self._woken:
            self._woken = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"!")

    def _maintain(self: WorkerPool) -> bool:
        """Keep the zygote and ``size`` workers alive; drive shutdown. False: stop."""
        if self._state == "broken":
            return False
        live = [w for w in self._workers if w.live]
        want = self.size
        if self._state == "closing":
            want = self.size if (self._queue and not live) else 0
        if len(live) < want:
            if not self._ensure_zygote():
                return self._state != "broken"
            for _ in range(want - len(live)):
                self._spawn()
        if self._state == "closing":
            return self._drain()
        extra = len(live) - self.size
        for w in sorted(live, key=lambda w: (bool(w.sessions), w.state != "idle")):
            if extra <= 0:
                break
            w.retire = "resized"
            extra -= 1
        return True

    def _ensure_zygote(self: WorkerPool) -> bool:
        zyg = self._zygote
        if zyg is not None and zyg.conn is not None:
            return True
        if self._zygote_failures >= 2:
            self._break(f"its zygote process exited {self._zygote_failures} times before it "
                        "was ready (see the process's stderr; a bad sys.path or a crashing "
                        "preload import are the usual causes).")
            return False
        zyg = self._zygote = Zygote(self.name, self.preload, self.env)
        zyg.start()
        self._poller.register(zyg.conn.fileno(), select.POLLIN)
        return True

    def _spawn(self: WorkerPool) -> None:
        parent, child = Pipe(duplex=True)
        fds, cell, memfd = [child.fileno()], None, -1
        if hasattr(os, "memfd_create"):
            memfd = os.memfd_create("dspex-cancel", os.MFD_CLOEXEC)
            os.ftruncate(memfd, 8)
            cell = mmap.mmap(memfd, 8)
            fds.append(memfd)
        try:
            cwd = os.getcwd()
            self._zygote.fork(next(self._tokens), fds, cwd)
        except OSError:  # the zygote is gone: its EOF is handled, then we try again
            parent.close()
            if cell is not None:
                cell.close()
            return
        finally:
            child.close()
            if memfd >= 0:
                os.close(memfd)
        w = WorkerHandle(parent, cell, where=(self._zygote.sys_path, cwd))
        self._workers.append(w)
        self._by_fd[parent.fileno()] = w
        self._poller.register(parent.fileno(), select.POLLIN)

    def _retire(self: WorkerPool, w: WorkerHandle) -> None:
        """Ask an idle worker to exit (recycling, resizing or shutdown)."""
        reason = w.retire or "shutdown"
        w.state, w.kill_reason = "retiring", reason
        w.kill_deadline = time.monotonic() + 5.0
        self._write(w, _EXIT_MSG)
        if reason == "recycled":
            self.stats["recycled"] += 1
            self._event("pool.worker_recycled", worker=w.pid, tasks=w.tasks,
                        rss_mb=round(w.rss / 2**20, 1))
        else:
            self._event("pool.worker_retired", worker=w.pid, tasks=w.tasks, reason=reason)

    def _kill(self: WorkerPool, w: WorkerHandle, reason: str) -> None:
        """SIGKILL ``w``; its EOF then reaches the dispatcher. A worker whose pid is not
        known yet is killed when its "ready" arrives."""
        w.kill_reason = reason
        w.state = "killed"
        w.kill_deadline = None
        w.signal(signal.SIGKILL)

    def _forget(self: WorkerPool, w: WorkerHandle) -> None:
        """Drop ``w`` and close its socket (dispatcher thread only: it owns the poller)."""
        fd = -1 if w.conn.closed else w.conn.fileno()
        if self._by_fd.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(fd)
        with w.send_lock:  # no writer is half-way through a frame
            w.outq.clear()
            w.close()
        if w in self._workers:
            self._workers.remove(w)
        w.state = "dead"

    def _drain(self: WorkerPool) -> bool:
        """Shutdown: let the work left finish, then retire every worker. False: done."""
        if self._queue or any(w.inflight or w.pinned for w in self._workers):
            return True
        for w in list(self._workers):
            if w.state == "idle":
                self._retire(w)
            elif w.state == "starting":  # its EOF (or the zygote's exit) ends it
                self._forget(w)
        if self._workers:
            return True
        self._state = "closed"
        self._cond.notify_all()
        return False

    def _break(self: WorkerPool, reason: str) -> None:
        self._state = "broken"
        self._broken = reason
        self._cancel_all(PoolError(f"Pool {self.name!r} is broken: {reason}"))
        self._cond.notify_all()
        self._event("pool.broken", error=reason)

    def _teardown(self: WorkerPool) -> None:
        """Last act of the dispatcher thread: nothing may outlive it (lock not held)."""
        with self._locked():
            for w in list(self._workers):
                w.signal(signal.SIGKILL)
                for task in [*w.inflight, *w.pinned]:
                    if not task.done and task.kind != "ping":
                        task.done = True
                        self._settle(task, exc=PoolError(f"Pool {self.name!r} stopped before "
                                                         f"task {task.id} finished."))
                self._forget(w)
            for task in self._queue:
                if not task.done:
                    task.done = True
                    if task.msg is not None:
                        _wire.discard(task.payload)
                    self._settle(task, exc=PoolError(f"Pool {self.name!r} stopped before "
                                                     f"task {task.id} ran."))
            self._queue.clear()
            self._queued = 0
            zyg, self._zygote = self._zygote, None
            if self._state != "broken":
                self._state = "closed"
            self._cond.notify_all()
        if zyg is not None:
            zyg.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
