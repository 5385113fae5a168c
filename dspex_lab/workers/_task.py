"""The kernel-side records of a pool: tasks, their futures, worker handles, and the sentences
that explain how a worker died.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import mmap
import os
import signal
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dspex_lab.workers.pool import WorkerPool
    from dspex_lab.workers.session import Session

__all__ = ["Task", "TaskFuture", "WorkerHandle", "describe_exit", "likely_causes"]

_CELL = struct.Struct("q")


class TaskFuture(cf.Future):
    """A ``concurrent.futures.Future`` for a pool task; ``cancel()`` also stops a running task.
    What the task printed is in ``output``; the first ``result()`` prints it to this process's
    ``sys.stdout`` (in Jupyter: the cell that collects the result).

    >>> fut = pool.submit(time.sleep, 60); fut.cancel(); fut.result()   # raises TaskCancelled
    """

    def __init__(self, pool: WorkerPool, task: Task) -> None:
        super().__init__()
        self._pool = pool
        self._task = task
        self.output: str | None = None

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        finally:
            if self.output is not None and self.done():
                text, self.output = self.output, None
                with contextlib.suppress(Exception):  # a closed stdout must not lose the result
                    print(text, end="" if text.endswith("\n") else "\n", flush=True)

    @property
    def task_id(self) -> int:
        return self._task.id

    def cancel(self) -> bool:
        """Cancel the task, queued or running; ``result()`` then raises ``TaskCancelled``."""
        if self.done():
            return self.cancelled()
        self._pool._cancel([self._task], "it was cancelled with future.cancel()")
        return True

    def cancelled(self) -> bool:
        return self._task.cancelled or super().cancelled()


@dataclass(eq=False, slots=True)
class Task:
    """One request for a worker: a task, a session operation or a health ping."""

    id: int
    name: str
    payload: bytes
    timeout: float | None = None
    size: int = 0  # len(payload) when it was made (payload is dropped once settled)
    msg: dict[str, Any] | None = None  # kept only for shared-memory frames (re-packed on retry)
    fn_token: int | None = None
    fn_def: bytes | None = None  # the "def" message to send first to a worker lacking fn_token
    session: Session | None = None
    kind: str = "task"  # "task" | "ping" | "control" (session drop: nobody waits)
    future: TaskFuture | None = None
    state: str = "queued"  # queued | pinned | sent
    worker: WorkerHandle | None = None
    attempts: int = 0
    started: float = 0.0
    queued_at: float = field(default_factory=time.monotonic)
    done: bool = False
    cancelled: bool = False

    @property
    def deadline(self) -> float | None:
        if self.timeout is None or not self.started:
            return None
        return self.started + self.timeout


@dataclass(eq=False)
class WorkerHandle:
    """The kernel's view of one worker process."""

    conn: Connection
    cell: mmap.mmap | None
    state: str = "starting"  # starting | idle | busy | retiring | killed | dead
    pid: int | None = None
    pidfd: int | None = None
    inflight: deque[Task] = field(default_factory=deque)
    pinned: deque[Task] = field(default_factory=deque)
    fns: OrderedDict[int, None] = field(default_factory=OrderedDict)
    sessions: set[Session] = field(default_factory=set)
    retire: str | None = None  # "recycled" / "resized": exit once idle and free of sessions
    tasks: int = 0
    rss: int = 0
    born: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    kill_reason: str | None = None
    kill_deadline: float | None = None  # SIGKILL if still alive then (cancel, exit)
    where: tuple[Any, str] = ((), "")  # (sys.path, cwd) the worker imports from
    outq: deque[bytes] = field(default_factory=deque)  # frames to write, in inflight order
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    def write_pending(self) -> None:
        """Write the queued frames, in order (pool lock not held; a full socket only
        blocks this writer, never the dispatcher's reads)."""
        with self.send_lock:
            while self.outq:
                frame = self.outq.popleft()
                try:
                    self.conn.send_bytes(frame)
                except OSError:  # the worker is gone: its EOF is handled by the dispatcher
                    self.outq.clear()

    @property
    def live(self) -> bool:
        """Counts toward the pool size (alive and not on its way out)."""
        return self.state in ("starting", "idle", "busy") and self.retire is None

    def signal(self, sig: int) -> bool:
        """Send ``sig`` (race-free through a pidfd when Linux has them)."""
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, sig)
            elif self.pid is not None:
                os.kill(self.pid, sig)
            else:
                return False
            return True
        except (ProcessLookupError, OSError):
            return False

    def interrupt(self, task_id: int) -> None:
        """Cancel ``task_id`` if it is what the worker runs (see ``worker.py``)."""
        if self.cell is not None:
            _CELL.pack_into(self.cell, 0, task_id)
        self.signal(signal.SIGINT)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None
        if self.cell is not None:
            with contextlib.suppress(BufferError, ValueError):
                self.cell.close()

    def open_pidfd(self) -> None:
        if self.pid is not None and hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except OSError:
                self.pidfd = None


def describe_exit(code: int | None) -> str:
    """``-9`` -> ``"killed by signal SIGKILL (9)"``; ``3`` -> ``"exit code 3"``."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by signal {name} ({-code})"
    return f"exit code {code}"


def likely_causes(code: int | None) -> str:
    """What usually makes a worker die with ``code``."""
    if code == -signal.SIGKILL:
        return ("it ran out of memory (the Linux OOM killer sends SIGKILL; see `dmesg`), or "
                "another process killed it")
    if code in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGILL, -signal.SIGFPE):
        return "a crash inside a C extension (for example a segfault in a native library)"
    if code == -signal.SIGABRT:
        return "a native library aborted (failed assertion, double free)"
    if code is not None and code >= 0:
        return "the task (or a library it called) exited the process with os._exit() or exit()"
    if code is not None:
        return "something sent the worker a fatal signal"
    return "out of memory, a crash in a C extension, or os._exit() in the task"
