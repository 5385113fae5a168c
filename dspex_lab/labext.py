"""The kernel side of the JupyterLab "DSPex" panel: a comm that pushes pool status and telemetry.

The frontend (``extensions/dspex-lab``) opens a comm to the target ``dspex_lab``. Each open comm
gets a ``LabChannel``: it subscribes to ``dspex_lab.telemetry``, folds events into a
``TelemetryAggregator`` and, from one daemon thread, sends ``{"type": "snapshot", "pools": [...],
"recent": [...], "totals": {...}}`` at most every ``min_interval`` seconds and only when something
changed. The frontend may send ``{"type": "refresh"}`` (recount from the telemetry buffer, send
now) and ``{"type": "restart_pools"}`` (``dspex_lab.workers.shutdown_all()``; pools re-create
lazily). Closing the comm stops the thread.

    >>> from dspex_lab.labext import register_comm_target
    >>> register_comm_target(get_ipython())     # done by ``%load_ext dspex_lab``
    True
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from dspex_lab import telemetry
from dspex_lab.telemetry import CALLS, Event, call_totals, per_call
from dspex_lab.telemetry.bus import finite_number

__all__ = [
    "COMM_TARGET",
    "LabChannel",
    "TelemetryAggregator",
    "close_all",
    "open_channels",
    "pool_status",
    "register_comm_target",
    "unregister_comm_target",
]

log = logging.getLogger("dspex_lab.labext")

COMM_TARGET = "dspex_lab"
_CALL_KINDS = ("lm.call", "pool.task_finished")
_FAILED = ("error", "invalid")  # batch.status.FAILED: the statuses counted as errors
_IN_FLIGHT = 64
_POOL_KEYS = ("name", "size", "alive", "busy", "queued", "tasks_done", "restarts")
_channels: dict[str, LabChannel] = {}
_channels_lock = threading.Lock()


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: numbers, strings, bools and None pass; anything else becomes str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _panel_progress(fields: dict[str, Any]) -> dict[str, Any]:
    """A ``run.progress`` event as the panel reads it: ``done``/``total``/``name`` (the run
    reports ``rows_done``/``rows``/``run_id``), plus the run's other counters as they are."""
    plain = {k: _plain(v) for k, v in fields.items()}
    plain.setdefault("done", plain.get("rows_done"))
    plain.setdefault("total", plain.get("rows"))
    if "name" not in plain and plain.get("run_id"):
        plain["name"] = f"run {str(plain['run_id'])[:8]}"
    return plain


class TelemetryAggregator:
    """Counters and a short list of recent calls, folded from telemetry events.

    Pure (no threads, no comm), so the panel's numbers are testable on their own.

        >>> agg = TelemetryAggregator(recent=5)
        >>> agg.feed(Event("lm.call", 0.0, {"latency_ms": 12.0, "prompt_tokens": 3}))
        >>> agg.totals()["calls"], agg.totals()["tokens"]
        (1, 3)
    """

    def __init__(self, recent: int = 20) -> None:
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.calls = self.errors = self.tokens = self.tasks = self.events = 0
        self.cost = self._latency_sum = 0.0
        self._latency_n = 0
        self.progress: dict[str, Any] | None = None

    def feed(self, event: Event) -> None:
        """Fold one event into the counters."""
        self.events += 1
        fields = event.fields
        error = fields.get("error")
        if event.kind == CALLS:
            self._feed_calls(event)
            return
        if event.kind == "lm.call":
            self.calls += 1
            tokens = self._tokens(fields)
            self.tokens += tokens or 0
            self.cost += finite_number(fields.get("cost")) or 0.0
            latency = finite_number(fields.get("latency_ms"))
            if latency is not None:
                self._latency_sum += latency
                self._latency_n += 1
        elif event.kind == "pool.task_finished":
            self.tasks += 1
        elif event.kind == "run.progress":
            self.progress = _panel_progress(fields)
        elif event.kind == "run.finished":
            self.progress = None  # the panel shows runs in progress only
        elif event.kind == "run.skipped" and fields.get("reason") == "input":
            # rows whose inputs do not fit: failed rows, as the run's usage counts them
            self.errors += int(finite_number(fields.get("rows")) or 0)
        if event.kind in _CALL_KINDS:
            state = fields.get("status")
            self.errors += state in _FAILED if state is not None else bool(error)
            self._recent.append(self._call_row(event))

    def _feed_calls(self, event: Event) -> None:
        """A batch's columnar ``lm.calls``: Arrow sums; only the last rows become recent."""
        table = event.fields.get("calls")
        if table is None or not table.num_rows:
            return
        sums = call_totals(table)
        self.calls += int(sums["calls"])
        self.tokens += int(sums["prompt_tokens"] + sums["completion_tokens"])
        self.cost += float(sums["cost"])
        self._latency_sum += float(sums["latency_ms"])
        self._latency_n += int(sums["timed"])
        self.errors += int(sums["errors"])
        tail = Event(CALLS, event.ts, {**event.fields,
                                       "calls": table.slice(max(0, table.num_rows
                                                                - self._recent.maxlen))})
        for call in per_call(tail):
            self._recent.append(self._call_row(call))

    def feed_all(self, events: Iterable[Event]) -> None:
        """Fold many events in, oldest first."""
        for event in events:
            self.feed(event)

    def totals(self) -> dict[str, Any]:
        """Counters; ``latency_ms`` is the mean LM-call latency (None before the first call)."""
        mean = self._latency_sum / self._latency_n if self._latency_n else None
        return {"calls": self.calls, "errors": self.errors, "tokens": self.tokens,
                "cost": round(self.cost, 8), "tasks": self.tasks, "events": self.events,
                "latency_ms": None if mean is None else round(mean, 1)}

    def recent(self) -> list[dict[str, Any]]:
        """The most recent calls, oldest first."""
        return list(self._recent)

    @staticmethod
    def _tokens(fields: dict[str, Any]) -> int | None:
        parts = [finite_number(fields.get(k)) for k in ("prompt_tokens", "completion_tokens")]
        if all(p is None for p in parts):
            total = finite_number(fields.get("total_tokens") or fields.get("tokens"))
            return None if total is None else int(total)
        return int(sum(p or 0 for p in parts))

    @classmethod
    def _call_row(cls, event: Event) -> dict[str, Any]:
        f = event.fields
        label = f.get("model") or f.get("pool") or f.get("name") or ""
        error = f.get("error")
        latency = f.get("latency_ms", f.get("duration_ms"))
        return {"kind": event.kind, "ts": event.ts, "label": str(label),
                "latency_ms": finite_number(latency), "tokens": cls._tokens(f),
                "cost": finite_number(f.get("cost")), "error": str(error)[:200] if error else None}


def pool_status() -> list[dict[str, Any]]:
    """The worker pools' status as JSON-safe dicts; ``[]`` when no pool module or pool exists.

        >>> pool_status()
        [{'name': 'default', 'size': 2, 'alive': 2, 'busy': 0, 'queued': 0, ...}]
    """
    try:
        from dspex_lab.workers import pool_status as _pool_status
    except ImportError:
        return []
    try:
        pools = _pool_status()
    except Exception:  # a status probe must never break the panel
        log.exception("dspex_lab.workers.pool_status() failed")
        return []
    rows = []
    for pool in pools or []:
        row = {k: _plain(pool.get(k)) for k in _POOL_KEYS if k in pool}
        row.setdefault("name", "?")
        rows.append(row)
    return rows


def _restart_pools() -> tuple[bool, str]:
    try:
        from dspex_lab.workers import shutdown_all
    except ImportError:
        return False, "dspex_lab.workers is not available in this kernel; nothing to restart."
    try:
        shutdown_all()
    except Exception as exc:
        log.exception("dspex_lab.workers.shutdown_all() failed")
        return False, f"Shutting down the worker pools failed: {exc!r}."
    return True, "Worker pools shut down; they restart on next use."


class LabChannel:
    """One open panel comm: a telemetry subscription plus a rate-limited sender thread.

    ``comm`` needs ``send(data)``, ``on_msg(cb)`` and ``on_close(cb)`` (an ipykernel comm).

        >>> channel = LabChannel(comm).start()   # sends the first snapshot at once
        >>> channel.close()                      # also called when the frontend closes the comm
    """

    def __init__(self, comm: Any, *, min_interval: float = 0.5, poll_interval: float = 1.0,
                 recent: int = 20,
                 pools: Callable[[], list[dict[str, Any]]] = pool_status) -> None:
        self.comm = comm
        self.min_interval = min_interval
        self.poll_interval = poll_interval
        self._pools = pools
        self._recent_size = recent
        self._aggregator = TelemetryAggregator(recent)
        self._inbox: deque[Event] = deque()
        self._lock = threading.Lock()  # guards the aggregator and the last snapshot
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last: dict[str, Any] | None = None
        self._last_sent = 0.0
        self._unsubscribe: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self.sent = 0

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def start(self) -> LabChannel:
        """Subscribe, count the buffered events, send a first snapshot, start the thread."""
        self._unsubscribe = telemetry.subscribe(self._on_event)
        self._recount()
        self.comm.on_msg(self._on_msg)
        self.comm.on_close(lambda _msg=None: self.close())
        self.push(force=True)
        self._thread = threading.Thread(target=self._run, name="dspex-lab-comm", daemon=True)
        self._thread.start()
        return self

    def snapshot(self) -> dict[str, Any]:
        """The message the panel would receive now."""
        with self._lock:
            while self._inbox:
                self._aggregator.feed(self._inbox.popleft())
            agg = self._aggregator
            return {"type": "snapshot", "pools": self._pools(), "recent": agg.recent(),
                    "totals": agg.totals(), "progress": agg.progress}

    def push(self, force: bool = False) -> bool:
        """Send a snapshot if it differs from the last one sent (or ``force``); True if sent."""
        if self.closed:
            return False
        snap = self.snapshot()
        if not force and snap == self._last:
            return False
        self._last = snap
        self._last_sent = time.monotonic()
        self.comm.send(snap)
        self.sent += 1
        return True

    def handle(self, data: dict[str, Any]) -> None:
        """Act on one frontend message (``refresh`` or ``restart_pools``)."""
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "refresh":
            self._recount()
            self.push(force=True)
        elif kind == "restart_pools":
            ok, message = _restart_pools()
            self.comm.send({"type": "ack", "action": "restart_pools", "ok": ok,
                            "message": message})
            self.push(force=True)
        else:
            self.comm.send({"type": "ack", "action": str(kind), "ok": False,
                            "message": f"Unknown message type {kind!r}; expected 'refresh' or "
                                       "'restart_pools'."})

    def close(self) -> None:
        """Stop the thread and the subscription. Idempotent; safe from any thread."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._unsubscribe:
            self._unsubscribe()
        thread = self._thread
        if thread and thread is not threading.current_thread():
            thread.join(timeout=5)
        with _channels_lock:
            for key, channel in list(_channels.items()):
                if channel is self:
                    del _channels[key]

    def _recount(self) -> None:
        """Rebuild the counters from the telemetry buffer, dropping duplicates in the inbox."""
        with self._lock:
            buffered = telemetry.get_bus().snapshot()
            # Inbox events are already in the buffer's tail (plus a few still being delivered).
            window = buffered[-(len(self._inbox) + _IN_FLIGHT):]
            seen = {id(e) for e in window} if self._inbox else set()
            pending = [e for e in self._inbox if id(e) not in seen]
            self._inbox.clear()
            self._aggregator = TelemetryAggregator(self._recent_size)
            self._aggregator.feed_all(buffered)
            self._aggregator.feed_all(pending)

    def _on_event(self, event: Event) -> None:
        self._inbox.append(event)
        self._wake.set()

    def _on_msg(self, msg: dict[str, Any]) -> None:
        try:
            self.handle(msg["content"]["data"])
        except Exception:
            log.exception("dspex_lab panel message failed: %r", msg)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            delay = self._last_sent + self.min_interval - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            try:
                self.push()
            except Exception:  # the kernel is shutting down, or a pool probe broke
                log.exception("dspex_lab panel update failed; stopping the updates")
                self.close()


def _on_open(comm: Any, open_msg: dict[str, Any]) -> None:
    channel = LabChannel(comm)
    with _channels_lock:
        _channels[str(getattr(comm, "comm_id", id(comm)))] = channel
    channel.start()


def _comm_manager(shell: Any) -> Any:
    kernel = getattr(shell, "kernel", None)
    manager = getattr(kernel, "comm_manager", None)
    if manager is None and kernel is not None:
        import comm

        manager = comm.get_comm_manager()
    return manager


def register_comm_target(shell: Any = None, target: str = COMM_TARGET) -> bool:
    """Let the JupyterLab panel connect to this kernel; False when there is no kernel (terminal).

        >>> register_comm_target(get_ipython())
        True
    """
    manager = _comm_manager(shell)
    if manager is None:
        return False
    manager.register_target(target, _on_open)
    return True


def unregister_comm_target(shell: Any = None, target: str = COMM_TARGET) -> None:
    """Undo ``register_comm_target`` and close every open panel channel."""
    manager = _comm_manager(shell)
    if manager is not None:
        manager.targets.pop(target, None)
    close_all()


def open_channels() -> list[LabChannel]:
    """The channels of the panel comms open right now."""
    with _channels_lock:
        return list(_channels.values())


def close_all() -> None:
    """Close every open channel (stops their threads); the comms are closed too."""
    for channel in open_channels():
        channel.close()
        try:
            channel.comm.close()
        except Exception:
            log.debug("closing the panel comm failed", exc_info=True)
