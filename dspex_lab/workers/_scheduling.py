"""Handing work to workers, and taking it back: queues, prefetching, sessions, cancelling.

Frames are never written under the pool lock: ``_write`` queues them per worker, in the
order of that worker's ``inflight`` list, and the thread that releases the lock writes them
(``WorkerHandle.write_pending``). A full socket then blocks only that writer, never the
dispatcher's reads. Methods run with the pool lock held unless they say otherwise.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import PoolError, TaskCancelled
from dspex_lab.workers import worker as _wire
from dspex_lab.workers._task import Task, WorkerHandle

if TYPE_CHECKING:
    from dspex_lab.workers.pool import WorkerPool

__all__ = ["Scheduling"]

_FN_CACHE = _wire.FN_CACHE_SIZE // 2  # the kernel assumes a worker remembers fewer than it does
_PREFETCH_MS = 2.0  # tasks shorter than this on average are sent ahead (see _prefetch_depth)
_MAX_AHEAD = 16  # at most this many tasks wait in a worker's socket
_PREFETCH_BYTES = 64 * 1024  # ...and at most this many bytes (the buffer holds ~200 KB)


class Scheduling:
    """Mixin of ``WorkerPool``: which worker runs what."""

    def _idle_worker(self: WorkerPool, task: Task) -> WorkerHandle | None:
        """A worker that can take ``task`` now: an idle one (preferring one that hosts no
        session), else a busy one that may queue it behind its current work."""
        best = None
        for w in self._workers:
            if w.state == "idle" and w.retire is None and not w.pinned:
                if not w.sessions:
                    return w
                best = best or w
        if best is None and self._prefetch_depth():
            for w in self._workers:
                if self._has_room(w, task) and (best is None
                                                or len(w.inflight) < len(best.inflight)):
                    best = w
        return best

    def _prefetch_depth(self: WorkerPool) -> int:
        """How many tasks a worker may hold (0: no prefetching). Short tasks are sent ahead,
        about ``_PREFETCH_MS`` of work per worker, so a worker never waits for the kernel
        between two of them; long ones wait in the queue, where any idle worker takes them."""
        ms = self._task_ms
        if ms is None or ms >= _PREFETCH_MS:
            return 0
        return 1 + max(1, min(_MAX_AHEAD, int(_PREFETCH_MS / max(ms, 0.01))))

    def _has_room(self: WorkerPool, w: WorkerHandle, task: Task) -> bool:
        """Can busy ``w`` queue ``task``? Bounded so the frames fit in its socket buffer: a
        writer blocked on a full buffer while the worker blocks writing a large reply to the
        dispatcher (which may be that writer) would deadlock."""
        if (w.state != "busy" or w.retire is not None or w.pinned or task.kind != "task"
                or len(w.inflight) >= self._prefetch_depth()):
            return False
        ahead = sum(t.size for t in itertools.islice(w.inflight, 1, None))
        if task.fn_token is not None and task.fn_token not in w.fns:
            ahead += len(task.fn_def or b"")
        return ahead + task.size <= _PREFETCH_BYTES

    def _send(self: WorkerPool, w: WorkerHandle, task: Task) -> None:
        """Hand ``task`` to ``w``. A dead socket is noticed by the poller, not here."""
        task.state, task.worker = "sent", w
        w.inflight.append(task)
        if len(w.inflight) == 1:
            task.started = time.monotonic()
            w.state = "busy"
        here = (tuple(sys.path), os.getcwd())
        if here != w.where:  # the notebook changed sys.path or the folder since: follow it
            w.where = here
            self._write(w, _wire.pack({"op": "path", "sys_path": list(here[0]),
                                       "cwd": here[1]}))
        token = task.fn_token
        if token is not None:
            if token in w.fns:
                w.fns.move_to_end(token)
            else:
                self._write(w, task.fn_def)
                w.fns[token] = None
                if len(w.fns) > _FN_CACHE:
                    w.fns.popitem(last=False)
        self._write(w, task.payload)
        deadline = task.deadline
        if deadline is not None and deadline < self._poll_until:
            self._wake()
        if self.task_events == "all" and task.kind == "task":
            self._event("pool.task_started", task=task.id, worker=w.pid)

    def _write(self: WorkerPool, w: WorkerHandle, frame: bytes) -> None:
        """Queue ``frame`` for ``w``; whoever releases the lock next writes it, in order."""
        w.outq.append(frame)
        self._senders.append(w)  # always: another thread may be draining w.outq right now

    def _schedule(self: WorkerPool) -> None:
        for w in sorted((w for w in self._workers if w.state == "idle"),
                        key=lambda w: len(w.sessions)):
            task = self._next_task(w)
            if task is not None:
                self._send(w, task)
            elif w.retire is not None and not w.sessions:
                self._retire(w)
        progress = bool(self._queue) and self._prefetch_depth() > 0
        while progress:  # top busy workers up, one task each per round
            progress = False
            for w in self._workers:
                while self._queue and self._queue[0].done:
                    self._queue.popleft()
                if self._queue and self._has_room(w, self._queue[0]):
                    self._send(w, self._next_task(w))
                    progress = True

    def _next_task(self: WorkerPool, w: WorkerHandle) -> Task | None:
        while w.pinned:
            task = w.pinned.popleft()
            if not task.done:
                return task
        if w.retire is not None:
            return None
        while self._queue:
            task = self._queue.popleft()
            if not task.done:
                self._queued -= 1
                if self._producers:
                    self._cond.notify_all()
                return task
        return None

    def _requeue(self: WorkerPool, tasks: list[Task]) -> None:
        for task in reversed(tasks):
            if task.msg is not None:  # its shared memory was (maybe) read: pack it again
                _wire.discard(task.payload)
                task.payload = _wire.pack(task.msg)
            task.state, task.worker, task.started = "queued", None, 0.0
            self._queue.appendleft(task)
            self._queued += 1

    def _interrupt(self: WorkerPool, w: WorkerHandle, task: Task) -> None:
        """SIGINT aimed at ``task``; kill the worker if it has not answered in time."""
        w.interrupt(task.id)
        w.kill_deadline = time.monotonic() + self.cancel_grace
        if self._thread is not None and w.kill_deadline < self._poll_until:
            self._wake()

    # -- cancelling -------------------------------------------------------------------------

    def _cancel(self: WorkerPool, tasks: list[Task], why: str) -> None:
        """Cancel tasks wherever they are; their futures raise ``TaskCancelled`` at once."""
        with self._locked():
            for task in tasks:
                if not task.done:
                    self._cancel_one(task, TaskCancelled(
                        f"Task {task.id} ({task.name}) was cancelled: {why}."))
            if self._producers:
                self._cond.notify_all()

    def _cancel_one(self: WorkerPool, task: Task, exc: BaseException) -> None:
        task.done = task.cancelled = True
        self.stats["cancelled"] += 1
        if task.state == "queued":
            self._queued -= 1
            if task.msg is not None:
                _wire.discard(task.payload)
        self._settle(task, exc=exc)
        w = task.worker
        if task.state == "sent" and w is not None and w.inflight and w.inflight[0] is task:
            self._interrupt(w, task)

    def _cancel_all(self: WorkerPool, exc: BaseException) -> None:
        for task in self._queue:
            if not task.done:
                self._cancel_one(task, exc)
        self._queue.clear()
        self._queued = 0
        for w in self._workers:
            for task in [*w.pinned, *w.inflight]:
                if not task.done and task.kind != "ping":
                    task.done = task.cancelled = True
                    self._settle(task, exc=exc)
            w.pinned.clear()
            if w.inflight and w.state == "busy":
                self._kill(w, "shutdown")

    # -- sessions ---------------------------------------------------------------------------

    def _checkout(self: WorkerPool, session: Any, timeout: float | None) -> WorkerHandle:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._locked():
            self._check_usable()
            self._ensure_started()
            while True:
                ready = [w for w in self._workers if w.live and w.state != "starting"]
                if ready:
                    w = min(ready, key=lambda w: (len(w.sessions), w.state != "idle"))
                    w.sessions.add(session)
                    self._event("pool.session_checkout", session=session.id, worker=w.pid)
                    return w
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise PoolError(f"No worker of pool {self.name!r} became ready within "
                                    f"{timeout:g} s to host a session; try again or raise "
                                    "the timeout.")
                self._cond.wait(left)
                self._check_usable()

    def _checkin(self: WorkerPool, session: Any, w: WorkerHandle) -> None:
        with self._locked():
            w.sessions.discard(session)
            self._event("pool.session_checkin", session=session.id, worker=w.pid)
            if w.retire is not None and self._thread is not None:
                self._wake()

    def _enqueue_pinned(self: WorkerPool, w: WorkerHandle, task: Task) -> None:
        """Queue a session's task for its pinned worker (lock not held)."""
        with self._locked():
            if task.session.lost is not None:
                raise task.session.crashed()
            self._check_usable()
            if self.task_events == "all" and task.kind == "task":
                self._event("pool.task_queued", task=task.id, name=task.name,
                            session=task.session.id)
            if w.state == "idle" and not w.pinned:
                self._send(w, task)
            else:
                task.state = "pinned"
                w.pinned.append(task)
