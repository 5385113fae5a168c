"""The worker process: the loop that runs the tasks a ``WorkerPool`` sends it.

A worker is forked warm from its pool's zygote (``_zygote``) and talks to the kernel over one
Unix socket pair. It runs one task at a time (a task may use threads inside) and answers every
request, in order, with one reply carrying the request's ``id``:

    {"op": "call", "id": 7, "fb": <cloudpickled fn>, "a": [...], "k": {...}, "o": 1}
                                            ->  {"id": 7, "value": ..., "ms": 0.1, "out": "..."}
    {"op": "def", "fk": 3, "fb": ...}       remember a function for the ``fk`` token (no reply)
    {"op": "path", "sys_path": [...], "cwd": "..."}   follow the kernel's sys.path (no reply)
    {"op": "store"|"scall"|"sdrop", "sid": "s1", ...}   session objects (see ``session.py``)
    {"op": "ping", "id": 8}                 ->  {"id": 8, "op": "pong", "rss": ...}
    {"op": "exit"}                          the worker exits

Cancelling: the kernel writes the id of the task to cancel into a shared 8-byte cell, then
sends SIGINT; the worker raises ``KeyboardInterrupt`` only if that id is the running task, so
a late signal never hits the next task.

Inside a task, ``stored(name)`` returns an object the task's session stored in this worker.
With ``"o"`` set, what the task prints to ``sys.stdout`` (from any of its threads) is captured,
up to ``OUTPUT_LIMIT`` characters, and sent back in the reply's ``"out"``; the kernel prints
it where the result is collected (a notebook cell), instead of the worker's terminal.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import mmap
import os
import signal
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from dspex_lab.errors import PoolError
from dspex_lab.workers import protocol

__all__ = ["FN_CACHE_SIZE", "OUTPUT_LIMIT", "discard", "is_error", "is_shm_frame", "pack",
           "remote_exception", "reply_error", "run", "set_parent_death_signal", "stored",
           "unpack"]

FN_CACHE_SIZE = 16  # functions a worker remembers by token (the kernel assumes fewer)
OUTPUT_LIMIT = 64 * 1024  # characters of a task's printed output sent back to the kernel
_RSS_EVERY = 0.2  # seconds between two RSS readings sent back with replies
_CELL = struct.Struct("q")


# -- wire: the only place that knows how messages become bytes --------------------------------

pack = protocol.pack
unpack = protocol.unpack
discard = protocol.discard
reply_error = protocol.error_message
is_error = protocol.is_error
remote_exception = protocol.remote_exception


def is_shm_frame(frame: bytes) -> bool:
    """True if ``frame`` keeps its attachments in shared memory (it can be read only once)."""
    return frame[3:4] == b"S"


# -- process plumbing ------------------------------------------------------------------------

def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parents(parent_pid: int, kernel_pid: int, every: float = 1.0) -> None:
    """Exit when the zygote or the kernel is gone (backs up ``PR_SET_PDEATHSIG``)."""
    while True:
        time.sleep(every)
        if os.getppid() != parent_pid:
            os._exit(0)
        try:
            os.kill(kernel_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def _rss() -> int:
    """Resident memory of this process in bytes (cheap: one read of /proc/self/statm)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * mmap.PAGESIZE
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- the worker ------------------------------------------------------------------------------

_WORKER: _Worker | None = None


def stored(name: str) -> Any:
    """Inside a session task: the object the session stored under ``name`` in this worker.

    >>> s.store("counter", Counter); s.submit(lambda: stored("counter").value).result()
    """
    w = _WORKER
    if w is None or w.session is None:
        raise PoolError(f"stored({name!r}) only works inside a task submitted through a "
                        "session (pool.session().submit(fn)).")
    return w.lookup(w.session, name)


class _Worker:
    def __init__(self, conn: Connection, cell: mmap.mmap | None) -> None:
        self.conn = conn
        self.cell = cell
        self.current = 0  # id of the running task, 0 when idle
        self.session: str | None = None
        self.fns: OrderedDict[int, Callable[..., Any]] = OrderedDict()
        self.blobs: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
        self.store: dict[tuple[str, str], Any] = {}
        self.rss_at = 0.0

    # signals ---------------------------------------------------------------------------
    def on_sigint(self, signum: int, frame: Any) -> None:
        target = _CELL.unpack_from(self.cell, 0)[0] if self.cell is not None else self.current
        if self.current and self.current == target:
            raise KeyboardInterrupt

    # loop ------------------------------------------------------------------------------
    def serve(self) -> None:
        self.send({"op": "ready", "pid": os.getpid(), "rss": _rss()})
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                reply = self.handle(data)
            except _Exit:
                return
            if reply is not None:
                self.send(reply)

    def send(self, reply: dict[str, Any]) -> None:
        try:
            data = pack(reply)
        except BaseException as exc:  # the value does not travel: say so instead
            err = TypeError(f"The result of task {reply.get('id')} could not be sent back to "
                            f"the kernel ({type(exc).__name__}: {exc}). Return plain data "
                            "(dicts, lists, DataFrames, picklable objects).")
            err.__cause__ = exc
            data = pack(reply_error(reply.get("id"), err))
        try:
            self.conn.send_bytes(data)
        except OSError:  # the kernel is gone
            if is_shm_frame(data):
                protocol.discard(data)
            os._exit(0)

    def handle(self, data: bytes) -> dict[str, Any] | None:
        try:
            msg = unpack(data)
        except BaseException as exc:
            try:
                tid = protocol.frame_info(data).id
            except Exception:
                tid = None
            # a request without an id expects no reply (a "def"): answering would put the
            # replies out of step with the kernel's list of requests
            return None if tid is None else reply_error(tid, _decode_error(exc))
        op = msg.get("op", "call")
        tid = msg.get("id")
        if op == "call":
            return self.run_task(tid, msg, msg.get("sid"))
        if op == "def":
            self.remember(msg["fk"], msg["fb"])
            return None
        if op == "path":  # the kernel's sys.path or folder changed (no reply)
            sys.path[:] = msg["sys_path"]
            with contextlib.suppress(OSError):
                os.chdir(msg["cwd"])
            importlib.invalidate_caches()
            return None
        if op == "ping":
            return {"id": tid, "op": "pong", "rss": _rss()}
        if op in ("store", "scall", "sdrop"):
            return self.run_task(tid, msg, msg["sid"])
        if op == "exit":
            raise _Exit
        return reply_error(tid, PoolError(f"Unknown request {op!r} sent to a worker."))

    def remember(self, token: int, blob: bytes) -> Callable[..., Any] | BaseException:
        """Unpickle a map's function once; a failure is kept and raised by its tasks."""
        try:
            fn: Callable[..., Any] | BaseException = cloudpickle.loads(blob)
        except Exception as exc:
            fn = _decode_error(exc)
        self.fns[token] = fn
        while len(self.fns) > FN_CACHE_SIZE:
            self.fns.popitem(last=False)
        return fn

    def resolve(self, msg: dict[str, Any]) -> Callable[..., Any]:
        op = msg.get("op", "call")
        if op == "store":
            return self.make_store(msg)
        if op == "scall":
            name, _, attr = msg["name"].partition(".")
            obj = self.lookup(msg["sid"], name)
            return getattr(obj, attr) if attr else obj
        if op == "sdrop":
            return lambda: self.drop(msg["sid"])
        if "fb" in msg:
            blob = msg["fb"]
            fn = self.blobs.get(blob)  # the same bytes: the same function, globals included
            if fn is None:
                try:
                    fn = cloudpickle.loads(blob)
                except Exception as exc:
                    raise _decode_error(exc) from exc
                self.blobs[blob] = fn
                if len(self.blobs) > FN_CACHE_SIZE:
                    self.blobs.popitem(last=False)
            return fn
        fn = self.fns.get(msg["fk"])
        if fn is None:
            raise PoolError(f"The worker does not know function token {msg['fk']}.")
        self.fns.move_to_end(msg["fk"])
        if isinstance(fn, BaseException):
            raise fn
        return fn

    def run_task(self, tid: int, msg: dict[str, Any], sid: str | None) -> dict[str, Any]:
        self.session = sid
        self.current = tid
        start = time.perf_counter()
        capture = _Capture(sys.stdout) if msg.get("o") else None
        if capture is not None:
            sys.stdout = capture
        try:
            if self.cell is not None and _CELL.unpack_from(self.cell, 0)[0] == tid:
                raise KeyboardInterrupt  # cancelled before it started
            fn = self.resolve(msg)
            value = fn(*msg.get("a", ()), **msg.get("k") or {})
            self.current = 0
            reply = {"id": tid, "value": value}
        except KeyboardInterrupt:
            self.current = 0
            reply = {"id": tid, "cancelled": True}
        except BaseException as exc:
            self.current = 0
            reply = reply_error(tid, exc)
        finally:
            self.current = 0
            self.session = None
            if capture is not None:
                sys.stdout = capture.original
        if capture is not None and capture.parts:
            reply["out"] = capture.text()
        now = time.perf_counter()
        reply["ms"] = (now - start) * 1e3
        if now - self.rss_at >= _RSS_EVERY:
            self.rss_at = now
            reply["rss"] = _rss()
        return reply

    # sessions --------------------------------------------------------------------------
    def make_store(self, msg: dict[str, Any]) -> Callable[[], None]:
        def store() -> None:
            value = msg["value"]
            if msg.get("factory"):
                value = value()
            self.store[(msg["sid"], msg["name"])] = value

        return store

    def lookup(self, sid: str, name: str) -> Any:
        try:
            return self.store[(sid, name)]
        except KeyError:
            have = sorted(n for s, n in self.store if s == sid)
            raise PoolError(f"Nothing named {name!r} is stored in this session (it has: "
                            f"{', '.join(have) or 'nothing'}); store it first with "
                            "session.store(name, obj).") from None

    def drop(self, sid: str) -> None:
        for key in [k for k in self.store if k[0] == sid]:
            del self.store[key]


class _Exit(Exception):
    pass


class _Capture:
    """``sys.stdout`` during a task: keeps what is printed (bounded), for the reply."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.parts: list[str] = []
        self.size = self.dropped = 0

    def write(self, text: str) -> int:
        room = OUTPUT_LIMIT - self.size
        kept = text[:max(0, room)]
        if kept:
            self.parts.append(kept)
            self.size += len(kept)
        self.dropped += len(text) - len(kept)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        out = "".join(self.parts)
        if self.dropped:
            out += f"\n[... {self.dropped:,} more characters printed in the worker not shown]\n"
        return out


def _decode_error(exc: BaseException) -> BaseException:
    """A clear error for a task (or its function) that cannot be unpickled in the worker."""
    err = TypeError(f"The worker could not decode the task ({type(exc).__name__}: {exc}). "
                    "If it names a module, make that module importable in the workers "
                    "(install it, or add its folder to sys.path before the pool starts).")
    err.__cause__ = exc
    return err


def run(conn: Connection, cell_fd: int | None, zygote_pid: int, kernel_pid: int,
        cwd: str | None = None) -> None:
    """Entry point in a freshly forked worker: set up, then serve until EOF or ``exit``."""
    global _WORKER
    set_parent_death_signal()
    if os.getppid() != zygote_pid:  # the zygote died between fork and prctl
        os._exit(0)
    if cwd:
        with contextlib.suppress(OSError):
            os.chdir(cwd)
    if "numpy" in sys.modules:  # forked workers must not share numpy's random stream
        with contextlib.suppress(Exception):
            sys.modules["numpy"].random.seed()
    cell = None
    if cell_fd is not None:
        cell = mmap.mmap(cell_fd, _CELL.size)
        os.close(cell_fd)
    _WORKER = worker = _Worker(conn, cell)
    signal.signal(signal.SIGINT, worker.on_sigint)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_parents, args=(zygote_pid, kernel_pid), daemon=True,
                     name="dspex-worker-watchdog").start()
    worker.serve()
