"""The dispatcher: what a ``WorkerPool``'s own thread does.

One thread per pool polls the worker sockets, the zygote's socket and a wake pipe. Under the
pool lock it reads replies, hands queued tasks to idle workers, spawns and retires workers,
and enforces deadlines (task timeouts, cancel grace, health pings). Futures are set and
telemetry emitted *after* the lock is released (``WorkerPool._flush``): a done callback or a
telemetry subscriber may call back into the pool.

Methods prefixed ``_`` run with the pool lock held unless they say otherwise.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import mmap
import os
import select
import signal
import threading
import time
from multiprocessing.connection import Pipe
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import PoolError, TaskCancelled, TaskTimeout, WorkerCrashed
from dspex_lab.workers import worker as _wire
from dspex_lab.workers._task import Task, WorkerHandle, describe_exit, likely_causes
from dspex_lab.workers._zygote import Zygote

if TYPE_CHECKING:
    from dspex_lab.workers.pool import WorkerPool

__all__ = ["Dispatcher"]

log = logging.getLogger("dspex_lab.workers")

_FN_CACHE = _wire.FN_CACHE_SIZE // 2  # the kernel assumes a worker remembers fewer than it does
_EXIT_CODE_WAIT = 0.5  # seconds to wait for a dead worker's exit status before reporting
_START_FAILURES = 3  # workers dying before they are ready, in a row, break the pool
_START_TIMEOUT = 60.0  # a worker not ready this long after its zygote is, is replaced
_PING_TIMEOUT = 10.0
_PREFETCH_MS = 2.0  # tasks shorter than this on average are sent ahead (see _prefetch_depth)
_MAX_AHEAD = 32  # at most this many tasks wait in a worker's socket
_PREFETCH_BYTES = 64 * 1024  # ...and at most this many bytes (the buffer holds ~200 KB)
_EXIT_MSG = _wire.pack({"op": "exit"})


class Dispatcher:
    """Mixin of ``WorkerPool``: the dispatcher thread and the state changes it makes."""

    # -- outbox: run after the lock is released ------------------------------------------------

    def _settle(self: WorkerPool, task: Task, value: Any = None,
                exc: BaseException | None = None) -> None:
        task.payload, task.msg, task.fn_def = b"", None, None  # futures may live long
        self._out.append((task, value, exc))

    def _event(self: WorkerPool, kind: str, **fields: Any) -> None:
        fields["pool"] = self.name
        self._out.append((None, kind, fields))

    # -- lifecycle ---------------------------------------------------------------------------

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
            self._zygote.fork(next(self._tokens), fds, os.getcwd())
        except OSError:  # the zygote is gone: its EOF is handled, then we try again
            parent.close()
            if cell is not None:
                cell.close()
            return
        finally:
            child.close()
            if memfd >= 0:
                os.close(memfd)
        w = WorkerHandle(0, parent, cell)
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

    # -- handing out tasks -------------------------------------------------------------------

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
        """Can busy ``w`` queue ``task``? Bounded so the frames fit in its socket buffer (a
        full buffer would block the sender while holding the lock)."""
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
        if self.task_events and task.kind == "task":
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

    # -- what arrives ------------------------------------------------------------------------

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
        if self.task_events and task.kind == "task":
            self._event("pool.task_finished", task=task.id, worker=w.pid, error=error,
                        duration_ms=round(msg.get("ms", (now - task.started) * 1e3), 3))
        if w.retire is None and (
                (self.max_tasks_per_worker and w.tasks >= self.max_tasks_per_worker)
                or (self.max_rss_mb and w.rss > self.max_rss_mb * 2**20)):
            w.retire = "recycled"

    def _resolve(self: WorkerPool, task: Task, msg: dict[str, Any]) -> str | None:
        """Settle ``task`` from its reply; returns the error type name, if any."""
        if task.done:
            return None
        task.done = True
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
                task.exit_codes.append((pid, None))
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

    # -- time --------------------------------------------------------------------------------

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
                           timeout=_PING_TIMEOUT, kind="ping"))

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
