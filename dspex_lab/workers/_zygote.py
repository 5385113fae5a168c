"""The zygote: one small process per pool that imports the preload modules once, then forks
warm workers on request.

The kernel side (``Zygote``) starts it with ``subprocess.Popen`` in a new session, so a
Ctrl-C sent to the kernel's process group never reaches the workers, and talks to it over a
Unix socket pair (no TCP). To fork a worker, the kernel sends ``{"op": "fork"}`` followed by
the worker's file descriptors (``SCM_RIGHTS``); the zygote answers ``{"op": "forked"}`` and
later ``{"op": "exit", "pid", "code"}`` when it reaps the worker (negative code = signal).

No orphans: the zygote dies with the thread that started it (``PR_SET_PDEATHSIG``), on EOF of
its control socket, or when its parent pid changes; workers die with the zygote the same way.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from multiprocessing import reduction
from multiprocessing.connection import Connection, Pipe, wait
from pathlib import Path
from typing import Any

from dspex_lab import _env

__all__ = ["Zygote", "main"]

_BOOT = ("import sys; sys.path.insert(0, {root!r}); "
         "from dspex_lab.workers._zygote import main; main()")


class Zygote:
    """Kernel-side handle of one zygote process (used only from the pool's dispatcher thread,
    except ``fork`` which the pool calls under its lock)."""

    def __init__(self, name: str, preload: tuple[str, ...], env: dict[str, str]) -> None:
        self.name = name
        self.preload = preload
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.started_at = 0.0
        self.ready_at = 0.0
        self.import_seconds: float | None = None
        self.preload_errors: list[str] = []
        self.sys_path: tuple[str, ...] = ()  # the kernel's when the zygote started

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the process; it imports the preload modules in the background."""
        parent, child = Pipe(duplex=True)
        env = {**_env.apply({**os.environ, **self.env}), "PYTHONUNBUFFERED": "1"}
        root = str(Path(__file__).resolve().parents[2])
        cmd = [sys.executable, "-c", _BOOT.format(root=root), str(child.fileno()),
               str(os.getpid())]
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(child.fileno(),), env=env,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=os.getcwd())
        finally:
            child.close()
        self.conn = parent
        self.ready = False
        self.started_at = time.monotonic()
        self.sys_path = tuple(sys.path)
        parent.send({"op": "init", "sys_path": list(sys.path), "preload": list(self.preload),
                     "name": self.name})

    def fork(self, token: int, fds: list[int], cwd: str) -> None:
        """Ask for one worker that gets ``fds`` (its socket and cancel cell)."""
        assert self.conn is not None
        self.conn.send({"op": "fork", "token": token, "n": len(fds), "cwd": cwd})
        with socket.fromfd(self.conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
            reduction.sendfds(s, fds)

    def read(self) -> dict[str, Any] | None:
        """One notice from the zygote, or None when it is gone."""
        assert self.conn is not None
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            return None
        if msg.get("op") == "ready":
            self.ready = True
            self.ready_at = time.monotonic()
            self.import_seconds = msg.get("seconds")
            self.preload_errors = msg.get("errors", [])
        return msg

    def close(self, timeout: float = 2.0) -> None:
        """Stop the zygote (its remaining workers die with it) and reap it."""
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            self.conn = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


# -- inside the zygote process ---------------------------------------------------------------

def main() -> None:
    """Entry point of the zygote process (``python -c`` boot line, see ``Zygote.start``)."""
    from dspex_lab.workers import worker

    ctrl_fd, kernel_pid = int(sys.argv[1]), int(sys.argv[2])
    worker.set_parent_death_signal()
    if os.getppid() != kernel_pid:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctrl = Connection(ctrl_fd)
    try:
        init = ctrl.recv()
    except (EOFError, OSError):
        os._exit(0)
    sys.path[:] = init["sys_path"]  # the kernel's: functions pickled by reference resolve
    start = time.perf_counter()
    errors = []
    for name in init["preload"]:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a broken preload must not stop the workers
            errors.append(f"import {name} failed: {type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start
    gc.collect()
    gc.freeze()  # keep the warm heap out of the collector: fewer copy-on-write faults
    ctrl.send({"op": "ready", "pid": os.getpid(), "seconds": seconds, "errors": errors})
    _serve(ctrl, kernel_pid)
    os._exit(0)


def _serve(ctrl: Connection, kernel_pid: int) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready = wait([ctrl, wake_r], timeout=1.0)
        if os.getppid() != kernel_pid:
            return
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        if not _reap(ctrl):
            return
        if ctrl in ready:
            try:
                msg = ctrl.recv()
            except (EOFError, OSError):
                return
            if msg["op"] == "exit":
                return
            if msg["op"] == "fork":
                with socket.fromfd(ctrl.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    fds = reduction.recvfds(s, msg["n"])
                pid = _fork(msg, fds, ctrl, (wake_r, wake_w), kernel_pid)
                try:
                    ctrl.send({"op": "forked", "token": msg["token"], "pid": pid})
                except OSError:
                    return


def _reap(ctrl: Connection) -> bool:
    """Collect exited workers and tell the kernel how each one ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return True
        try:
            ctrl.send({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})
        except OSError:
            return False


def _fork(msg: dict[str, Any], fds: list[int], ctrl: Connection, wake: tuple[int, int],
          kernel_pid: int) -> int:
    zygote_pid = os.getpid()
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: the kernel sees the socket close
        pid = -1
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in wake:
            os.close(fd)
        ctrl.close()
        from dspex_lab.workers import worker

        worker.run(Connection(fds[0]), fds[1] if len(fds) > 1 else None, zygote_pid,
                   kernel_pid, msg.get("cwd"))
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        os._exit(code)
