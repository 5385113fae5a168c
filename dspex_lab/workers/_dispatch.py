"""The dispatcher: what a ``WorkerPool``'s own thread does.

One thread per pool polls the worker sockets, the zygote's socket and a wake pipe. It reads
and decodes what arrived without the lock (it is the only reader), then, under the pool lock,
settles tasks, handles dead workers (retry, or ``WorkerCrashed`` with the exit status), hands
queued tasks to idle workers and enforces deadlines: task timeouts, the cancel grace period,
health pings. Futures are set and telemetry emitted once the lock is released.

Methods run with the pool lock held unless they say otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import TaskCancelled, TaskTimeout, WorkerCrashed
from dspex_lab.workers import worker as _wire
from dspex_lab.workers._task import Task, WorkerHandle, describe_exit, likely_causes

if TYPE_CHECKING:
    from dspex_lab.workers.pool import WorkerPool

__all__ = ["Dispatcher"]

log = logging.getLogger("dspex_lab.workers")

_EXIT_CODE_WAIT = 0.5  # seconds to wait for a dead worker's exit status before reporting
_START_FAILURES = 3  # workers dying before they are ready, in a row, break the pool
_START_TIMEOUT = 60.0  # a worker not ready this long after its zygote is, is replaced
_PING_TIMEOUT = 10.0  # at most; never more than one health interval (at least 1 s)


class Dispatcher:
    """Mixin of ``WorkerPool``: the dispatcher thread and what it does with what arrives."""

    def _run(self: WorkerPool) -> None:
        """The dispatcher thread (lock not held)."""
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave futures hanging
            log.exception("the dispatcher of pool %r failed", self.name)
            with self._locked():
                self._break(f"its dispatcher thread failed ({type(exc).__name__}: {exc}).")
        finally:
            self._teardown()

    def _step(self: WorkerPool) -> bool:
        """One round: maintain, poll, read (unlocked), then apply what arrived."""
        with self._locked():
            if not self._maintain():
                return False
            timeout = self._next_timeout()
            self._poll_until = time.monotonic() + timeout
        events = self._poller.poll(timeout * 1000)
        arrived = self._read(events)  # only this thread reads sockets: no lock needed
        with self._locked():
            self._poll_until = -math.inf  # while we work, nobody needs to wake us
            for source, msg in arrived:
                if source is None:
                    self._on_zygote(msg)
                elif msg is None:
                    self._on_worker_gone(source)
                else:
                    self._on_worker(source, msg)
            self._check_deadlines()
            self._schedule()
        return True

    def _read(self: WorkerPool, events: list[tuple[int, int]]) -> list[tuple[Any, Any]]:
        """Read one message from every ready socket (lock not held). ``(None, msg)`` is from
        the zygote, ``(worker, None)`` means the worker's socket closed."""
        arrived: list[tuple[Any, Any]] = []
        zyg = self._zygote
        zfd = zyg.conn.fileno() if zyg is not None and zyg.conn is not None else None
        for fd, _ in events:
            if fd == self._wake_r:
                self._woken = False
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            elif fd == zfd:
                arrived.append((None, zyg.read()))
            elif fd in self._by_fd:
                w = self._by_fd[fd]
                arrived.append((w, self._receive(w)))
        return arrived

    def _receive(self: WorkerPool, w: WorkerHandle) -> dict[str, Any] | None:
        """One decoded message from ``w``; None at EOF (lock not held)."""
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError):
            return None
        head = w.inflight[0] if w.inflight else None  # only this thread pops: stable
        if head is not None and head.done:  # a late answer nobody waits for: do not decode
            with contextlib.suppress(Exception):
                _wire.discard(data)
            return {"id": head.id, "ignored": True}
        try:
            return _wire.unpack(data)
        except Exception as exc:
            return {"id": None, "decode_error": exc}

    def _on_zygote(self: WorkerPool, msg: dict[str, Any] | None) -> None:
        zyg = self._zygote
        if zyg is None or zyg.conn is None:
            return
        if msg is None:  # the zygote is gone; its workers die with it and get replaced
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(zyg.conn.fileno())
            if not zyg.ready:
                self._zygote_failures += 1
            zyg.close(timeout=1.0)
            self._zygote = None
            self._event("pool.zygote_died", ready=zyg.ready)
            return
        op = msg.get("op")
        if op == "exit":
            self._exit_codes[msg["pid"]] = msg["code"]
            if len(self._exit_codes) > 1000:
                self._exit_codes.pop(next(iter(self._exit_codes)))
        elif op == "ready":
            self._zygote_failures = 0
            self._event("pool.zygote_ready", pid=msg.get("pid"), seconds=msg.get("seconds"),
                        errors=msg.get("errors") or None)
            for error in msg.get("errors", []):
                log.warning("pool %r: preload %s", self.name, error)

    def _on_worker(self: WorkerPool, w: WorkerHandle, msg: dict[str, Any]) -> None:
        if w.state == "dead":
            return
        if msg.get("op") == "ready":
            w.pid, w.rss = msg["pid"], msg.get("rss", 0)
            w.open_pidfd()
            if w.kill_reason is not None:  # killed before we knew its pid
                w.signal(signal.SIGKILL)
                return
            if w.state == "starting":
                w.state = "idle"
            self._start_failures = 0
            self._cond.notify_all()
            self._event("pool.worker_started", worker=w.pid,
                        startup_ms=round((time.monotonic() - w.born) * 1e3, 1))
            return
        self._on_reply(w, msg)

    def _on_reply(self: WorkerPool, w: WorkerHandle, msg: dict[str, Any]) -> None:
        if not w.inflight:
            log.warning("pool %r: worker %s answered a request it was not given", self.name,
                        w.pid)
            return
        if msg.get("id") not in (None, w.inflight[0].id):  # out of step: start afresh
            log.warning("pool %r: worker %s answered request %s, expected %s; replacing it",
                        self.name, w.pid, msg.get("id"), w.inflight[0].id)
            self._kill(w, "protocol out of step")
            return
        task = w.inflight.popleft()
        now = time.monotonic()
        w.last_active = now
        w.kill_deadline = None
        w.rss = msg.get("rss", w.rss)
        if w.inflight:
            nxt = w.inflight[0]
            nxt.started = now
            if nxt.done:
                self._interrupt(w, nxt)
        elif w.state == "busy":
            w.state = "idle"
        if task.kind != "task":  # a health ping or a session's clean-up
            return
        w.tasks += 1
        self.stats["tasks_done"] += 1
        ms = msg.get("ms")
        if ms is not None:
            self._task_ms = ms if self._task_ms is None else 0.8 * self._task_ms + 0.2 * ms
        error = self._resolve(task, msg)
        if self.task_events:
            self._event("pool.task_finished", task=task.id, name=task.name, worker=w.pid,
                        error=error, duration_ms=round(msg.get("ms", (now - task.started) * 1e3),
                                                       3),
                        queue_ms=round((task.started - task.queued_at) * 1e3, 3))
        if w.retire is None and (
                (self.max_tasks_per_worker and w.tasks >= self.max_tasks_per_worker)
                or (self.max_rss_mb and w.rss > self.max_rss_mb * 2**20)):
            w.retire = "recycled"

    def _resolve(self: WorkerPool, task: Task, msg: dict[str, Any]) -> str | None:
        """Settle ``task`` from its reply; returns the error type name, if any."""
        if task.done:
            return None
        task.done = True
        if msg.get("out") and task.future is not None:
            task.future.output = msg["out"]
        if "decode_error" in msg:
            exc: BaseException = msg["decode_error"]
        elif _wire.is_error(msg):
            exc = _wire.remote_exception(msg)
        elif msg.get("cancelled"):
            exc = TaskCancelled(f"Task {task.id} ({task.name}) was interrupted inside the "
                                "worker (it raised KeyboardInterrupt).")
        else:
            self._settle(task, msg.get("value"))
            return None
        self.stats["failed"] += 1
        self._settle(task, exc=exc)
        return type(exc).__name__

    def _on_worker_gone(self: WorkerPool, w: WorkerHandle) -> None:
        """A worker's socket closed: it exited, crashed or was killed."""
        if w.state == "dead":
            return
        reason, pid, was_starting = w.kill_reason, w.pid, w.state == "starting"
        inflight, pinned = list(w.inflight), list(w.pinned)
        w.inflight.clear()
        w.pinned.clear()
        self._forget(w)
        if reason is None:
            self.stats["crashes"] += 1
            self._start_failures += was_starting
            if self._start_failures >= _START_FAILURES:
                self._break(f"its workers died {self._start_failures} times in a row before "
                            "they were ready (see the processes' stderr).")
                return
        if reason not in ("recycled", "resized", "shutdown"):
            self.stats["restarts"] += self._state == "running"
            self._event("pool.worker_died", worker=pid, reason=reason or "crashed")
            if self._state == "running":
                self._event("pool.worker_restarted", worker=pid, reason=reason or "crashed")
        what = f"was stopped ({reason})" if reason else "died"
        for session in list(w.sessions):
            session.lose(f"its worker (pid {pid}) {what}")
        retry = []
        for i, task in enumerate(inflight):
            if task.done or task.kind == "ping":
                continue
            if i == 0 and reason is None:  # it was running when the worker died
                task.attempts += 1
                if task.session is None and task.attempts < self.max_attempts:
                    self.stats["retries"] += 1
                    retry.append(task)
                else:
                    self._crashes.append((time.monotonic() + _EXIT_CODE_WAIT, task, pid))
            elif task.session is not None:
                task.done = True
                self._settle(task, exc=task.session.crashed())
            else:
                retry.append(task)
        for task in pinned:
            if not task.done:
                task.done = True
                self._settle(task, exc=task.session.crashed())
        self._requeue(retry)

    def _finish_crash(self: WorkerPool, task: Task, pid: int | None) -> None:
        code = self._exit_codes.pop(pid, None) if pid is not None else None
        if task.done:
            return
        task.done = True
        self.stats["failed"] += 1
        if task.session is not None:
            self._settle(task, exc=task.session.crashed(
                f"its worker (pid {pid}) died while running task {task.id} ({task.name}): "
                f"{describe_exit(code)}; likely causes: {likely_causes(code)}"))
            return
        runs = f"{task.attempts} time{'s' if task.attempts != 1 else ''}"
        self._settle(task, exc=WorkerCrashed(
            f"Task {task.id} ({task.name}) failed: its worker process died while running it, "
            f"{runs} (max_attempts={self.max_attempts}). Last worker: pid {pid}, "
            f"{describe_exit(code)}. Likely causes: {likely_causes(code)}. Run the task in "
            "the kernel on one input to see the error, or give it less data per call."))

    def _check_deadlines(self: WorkerPool) -> None:
        now = time.monotonic()
        zygote_ready_at = self._zygote.ready_at if self._zygote and self._zygote.ready else None
        for w in list(self._workers):
            if w.kill_deadline is not None and now >= w.kill_deadline:
                self._kill(w, "cancelled" if w.state == "busy" else "did not exit")
                continue
            head = w.inflight[0] if w.inflight else None
            deadline = head.deadline if head is not None else None
            if deadline is not None and now >= deadline:
                if head.kind == "ping":
                    self._kill(w, "failed its health check")
                elif not head.done:
                    head.done = True
                    self.stats["timeouts"] += 1
                    self.stats["failed"] += 1
                    self._settle(head, exc=TaskTimeout(
                        f"Task {head.id} ({head.name}) ran longer than its timeout of "
                        f"{head.timeout:g} s; its worker (pid {w.pid}) was killed and "
                        "replaced. Raise timeout= (or the pool's task_timeout) if the task "
                        "needs longer."))
                    self._kill(w, "timeout")
            elif (w.state == "starting" and zygote_ready_at
                  and now - max(w.born, zygote_ready_at) > _START_TIMEOUT):
                self._kill(w, "start timeout")
        for item in [c for c in self._crashes if c[2] in self._exit_codes or now >= c[0]]:
            self._crashes.remove(item)
            self._finish_crash(item[1], item[2])
        if now >= self._next_health:
            self._next_health = now + self.health_interval
            for w in self._workers:
                if w.state == "idle" and now - w.last_active >= self.health_interval:
                    self._ping(w)
        if self._depth_at[1] != self._queued and now - self._depth_at[0] >= 0.25:
            self._depth_at = (now, self._queued)
            self._event("pool.queue_depth", depth=self._queued)

    def _ping(self: WorkerPool, w: WorkerHandle) -> None:
        task_id = next(self._ids)
        self._send(w, Task(task_id, "ping", _wire.pack({"op": "ping", "id": task_id}),
                           timeout=max(1.0, min(_PING_TIMEOUT, self.health_interval)),
                           kind="ping"))

    def _next_timeout(self: WorkerPool) -> float:
        """Seconds until the next deadline (health checks at the latest)."""
        now = time.monotonic()
        soon = self._next_health if self._workers else now + 60.0
        for w in self._workers:
            if w.kill_deadline is not None:
                soon = min(soon, w.kill_deadline)
            if w.inflight and w.inflight[0].deadline is not None:
                soon = min(soon, w.inflight[0].deadline)
            if w.state == "starting":
                soon = min(soon, w.born + _START_TIMEOUT)
        for deadline, _, _ in self._crashes:
            soon = min(soon, deadline)
        if self._depth_at[1] != self._queued:
            soon = min(soon, self._depth_at[0] + 0.25)
        return max(0.0, soon - now)
