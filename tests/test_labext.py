"""The kernel side of the JupyterLab panel, driven by a fake comm (no frontend, no kernel)."""

from __future__ import annotations

import sys
import threading
import time
import types
from types import SimpleNamespace
from typing import ClassVar

import comm as comm_pkg
import pytest
from comm.base_comm import BaseComm, CommManager

from dspex_lab import labext, telemetry
from dspex_lab.labext import LabChannel, TelemetryAggregator, register_comm_target
from dspex_lab.telemetry import CALLS, Event


class FakeComm:
    """Records what the kernel sends; plays the frontend's messages and close."""

    def __init__(self) -> None:
        self.comm_id = "fake"
        self.sent: list[dict] = []
        self.closed = False
        self._on_msg = self._on_close = None

    def send(self, data: dict) -> None:
        self.sent.append(data)

    def on_msg(self, callback) -> None:
        self._on_msg = callback

    def on_close(self, callback) -> None:
        self._on_close = callback

    def close(self) -> None:
        self.closed = True

    def frontend_sends(self, data: dict) -> None:
        self._on_msg({"content": {"comm_id": self.comm_id, "data": data}})

    def frontend_closes(self) -> None:
        self._on_close({"content": {"comm_id": self.comm_id, "data": {}}})

    def snapshots(self) -> list[dict]:
        return [m for m in self.sent if m["type"] == "snapshot"]

    def acks(self) -> list[dict]:
        return [m for m in self.sent if m["type"] == "ack"]


def wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def sender_threads() -> int:
    return sum(t.name == "dspex-lab-comm" for t in threading.enumerate())


def lm_call(**fields) -> None:
    base = dict(model="m", latency_ms=12.0, prompt_tokens=10, completion_tokens=5, cost=0.001)
    telemetry.emit("lm.call", **{**base, **fields})


@pytest.fixture(autouse=True)
def clean_bus():
    telemetry.clear()
    yield
    labext.close_all()
    telemetry.clear()


@pytest.fixture
def channels():
    made: list[LabChannel] = []

    def make(**kwargs) -> tuple[FakeComm, LabChannel]:
        kwargs.setdefault("pools", list)
        comm = FakeComm()
        made.append(LabChannel(comm, **kwargs).start())
        return comm, made[-1]

    yield make
    for channel in made:
        channel.close()
    assert wait_until(lambda: sender_threads() == 0)


@pytest.fixture
def fake_workers(monkeypatch):
    """A stand-in `dspex_lab.workers` (the real pool module is written separately)."""
    module = types.ModuleType("dspex_lab.workers")
    module.pools = [{"name": "default", "size": 2, "alive": 2, "busy": 0, "queued": 0,
                     "tasks_done": 0, "restarts": 0, "pids": object()}]
    module.shutdowns = 0

    def shutdown_all() -> None:
        module.shutdowns += 1

    module.pool_status = lambda: [dict(p) for p in module.pools]
    module.shutdown_all = shutdown_all
    monkeypatch.setitem(sys.modules, "dspex_lab.workers", module)
    return module


# --- the aggregator -------------------------------------------------------------------------


def test_aggregator_counts_calls_errors_tokens_and_cost():
    agg = TelemetryAggregator(recent=3)
    for i in range(5):
        agg.feed(Event("lm.call", float(i), {"model": "m", "latency_ms": 10.0 + i,
                                             "prompt_tokens": 10, "completion_tokens": 5,
                                             "cost": 0.5, "error": "Timeout" if i == 4 else None}))
    agg.feed(Event("pool.task_finished", 9.0, {"pool": "p", "duration_ms": 3.0}))
    agg.feed(Event("router.route", 9.5, {"target": "native"}))

    assert agg.totals() == {"calls": 5, "errors": 1, "tokens": 75, "cost": 2.5, "tasks": 1,
                            "events": 7, "latency_ms": 12.0}
    recent = agg.recent()
    assert [r["ts"] for r in recent] == [3.0, 4.0, 9.0]
    assert recent[1] == {"kind": "lm.call", "ts": 4.0, "label": "m", "latency_ms": 14.0,
                         "tokens": 15, "cost": 0.5, "error": "Timeout"}
    assert recent[2]["label"] == "p" and recent[2]["latency_ms"] == 3.0


def test_aggregator_folds_a_batch_calls_event_and_keeps_its_last_rows_recent():
    import pyarrow as pa

    agg = TelemetryAggregator(recent=2)
    table = pa.table({"row": [0, 1, 2], "latency_ms": [10.0, 20.0, 30.0],
                      "prompt_tokens": [4, 4, 4], "completion_tokens": [1, 1, 1],
                      "cost": [0.5, 0.5, 0.5], "error": [None, None, "Timeout"],
                      "cached": [False] * 3})
    agg.feed(Event(CALLS, 1.0, {"model": "m", "route": "pool", "calls": table}))
    assert agg.totals() == {"calls": 3, "errors": 1, "tokens": 15, "cost": 1.5, "tasks": 0,
                            "events": 1, "latency_ms": 20.0}
    assert [r["latency_ms"] for r in agg.recent()] == [20.0, 30.0]
    assert agg.recent()[-1]["error"] == "Timeout" and agg.recent()[-1]["label"] == "m"


def test_aggregator_tolerates_missing_and_odd_fields():
    agg = TelemetryAggregator()
    agg.feed(Event("lm.call", 1.0, {"latency_ms": "slow", "cost": float("nan")}))
    agg.feed(Event("lm.call", 2.0, {"total_tokens": 7}))
    agg.feed(Event("run.progress", 3.0, {"done": 3, "total": 10, "name": object()}))

    assert agg.totals()["calls"] == 2
    assert agg.totals()["tokens"] == 7
    assert agg.totals()["cost"] == 0.0
    assert agg.totals()["latency_ms"] is None
    assert agg.recent()[0]["latency_ms"] is None and agg.recent()[0]["tokens"] is None
    assert agg.progress["done"] == 3 and isinstance(agg.progress["name"], str)


# --- pool status ----------------------------------------------------------------------------


def test_pool_status_is_empty_without_a_pool_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "dspex_lab.workers", None)  # import raises ImportError
    assert labext.pool_status() == []


def test_pool_status_keeps_known_keys_as_plain_values(fake_workers):
    assert labext.pool_status() == [{"name": "default", "size": 2, "alive": 2, "busy": 0,
                                     "queued": 0, "tasks_done": 0, "restarts": 0}]


def test_pool_status_survives_a_failing_probe(fake_workers):
    def broken():
        raise RuntimeError("pool table is locked")

    fake_workers.pool_status = broken
    assert labext.pool_status() == []


# --- the channel ----------------------------------------------------------------------------


def test_first_snapshot_counts_events_emitted_before_the_panel_opened(channels):
    lm_call()
    lm_call(error="RateLimitError")
    comm, _ = channels()

    first = comm.sent[0]
    assert first["type"] == "snapshot"
    assert first["totals"]["calls"] == 2 and first["totals"]["errors"] == 1
    assert first["totals"]["tokens"] == 30
    assert [r["error"] for r in first["recent"]] == [None, "RateLimitError"]


def test_new_events_reach_the_panel(channels):
    comm, _ = channels()
    for _ in range(3):
        lm_call()
    assert wait_until(lambda: comm.snapshots()[-1]["totals"]["calls"] == 3)


def test_sends_are_rate_limited_during_a_burst(channels):
    comm, _ = channels(min_interval=0.2, poll_interval=0.05)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 1.0:
        lm_call()
        n += 1
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    assert wait_until(lambda: comm.snapshots()[-1]["totals"]["calls"] == n)
    sends = len(comm.snapshots())
    assert 3 <= sends <= elapsed / 0.2 + 3, sends


def test_nothing_is_sent_while_nothing_changes(channels):
    comm, _ = channels(min_interval=0.01, poll_interval=0.02)
    lm_call()
    assert wait_until(lambda: len(comm.snapshots()) == 2)
    time.sleep(0.3)  # ~15 polls
    assert len(comm.snapshots()) == 2


def test_pool_changes_are_pushed_without_events(channels, fake_workers):
    comm, _ = channels(min_interval=0.01, poll_interval=0.02, pools=labext.pool_status)
    assert comm.sent[0]["pools"][0]["busy"] == 0
    fake_workers.pools[0]["busy"] = 2
    assert wait_until(lambda: comm.snapshots()[-1]["pools"][0]["busy"] == 2)


def test_refresh_recounts_from_the_buffer_and_sends_now(channels):
    comm, _ = channels(min_interval=10.0, poll_interval=10.0)
    telemetry.clear()
    lm_call()
    comm.frontend_sends({"type": "refresh"})
    assert comm.sent[-1]["type"] == "snapshot"
    assert comm.sent[-1]["totals"]["calls"] == 1


def test_restart_pools_shuts_pools_down_and_acks(channels, fake_workers):
    comm, _ = channels()
    comm.frontend_sends({"type": "restart_pools"})
    assert fake_workers.shutdowns == 1
    assert comm.acks() == [{"type": "ack", "action": "restart_pools", "ok": True,
                            "message": "Worker pools shut down; they restart on next use."}]
    assert comm.sent[-1]["type"] == "snapshot"


def test_restart_pools_without_a_pool_module_says_so(channels, monkeypatch):
    monkeypatch.setitem(sys.modules, "dspex_lab.workers", None)
    comm, _ = channels()
    comm.frontend_sends({"type": "restart_pools"})
    (ack,) = comm.acks()
    assert ack["ok"] is False and "dspex_lab.workers is not available" in ack["message"]


def test_unknown_message_is_answered_not_raised(channels):
    comm, _ = channels()
    comm.frontend_sends({"type": "explode"})
    (ack,) = comm.acks()
    assert ack["ok"] is False and "'explode'" in ack["message"]


def test_frontend_close_stops_the_thread_and_the_subscription(channels):
    comm, channel = channels(min_interval=0.01, poll_interval=0.02)
    assert sender_threads() == 1
    comm.frontend_closes()
    assert channel.closed and sender_threads() == 0
    before = len(comm.sent)
    lm_call()
    time.sleep(0.1)
    assert len(comm.sent) == before
    assert channel.push(force=True) is False


# --- registration through a real comm manager -----------------------------------------------


class RecordingComm(BaseComm):
    """A real `comm` package comm whose messages land in a list instead of a socket."""

    published: ClassVar[list[tuple[str, dict]]] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        self.published.append((msg_type, data))


def test_register_comm_target_serves_comm_open_msg_and_close(monkeypatch):
    manager = CommManager()
    shell = SimpleNamespace(kernel=SimpleNamespace(comm_manager=manager))
    monkeypatch.setattr(comm_pkg, "create_comm", lambda **kw: RecordingComm(**kw))
    RecordingComm.published = []
    lm_call()

    assert register_comm_target(shell) is True
    assert "dspex_lab" in manager.targets
    manager.comm_open(None, None, {"content": {"comm_id": "c1", "target_name": "dspex_lab",
                                              "data": {}}})
    (channel,) = labext.open_channels()
    msg_type, data = RecordingComm.published[0]
    assert msg_type == "comm_msg" and data["totals"]["calls"] == 1

    manager.comm_msg(None, None, {"content": {"comm_id": "c1", "data": {"type": "refresh"}}})
    assert len(RecordingComm.published) == 2
    manager.comm_close(None, None, {"content": {"comm_id": "c1", "data": {}}})
    assert channel.closed and labext.open_channels() == []

    labext.unregister_comm_target(shell)
    assert "dspex_lab" not in manager.targets


def test_register_comm_target_without_a_kernel_returns_false():
    assert register_comm_target(SimpleNamespace()) is False
    assert register_comm_target(None) is False


def test_run_progress_is_shown_as_the_panel_reads_it_and_cleared_when_the_run_ends():
    """The run reports ``rows_done``/``rows``/``run_id``; the panel reads ``done``/``total``/
    ``name`` and shows runs in progress only."""
    agg = TelemetryAggregator()
    agg.feed(Event("run.progress", 1.0, {"run_id": "abcdef123456", "rows_done": 40,
                                         "rows": 100, "errors": 2}))
    assert agg.progress["done"] == 40 and agg.progress["total"] == 100
    assert agg.progress["name"] == "run abcdef12" and agg.progress["errors"] == 2

    agg.feed(Event("run.finished", 2.0, {"run_id": "abcdef123456", "rows": 100}))
    assert agg.progress is None
