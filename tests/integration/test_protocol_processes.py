"""The wire protocol between two real processes: a multiprocessing Pipe and a socketpair."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket

import numpy as np
import pandas as pd
import pytest

from dspex_lab.errors import ProtocolError, RemoteError, ValidationError
from dspex_lab.exchange import shm
from dspex_lab.workers import protocol

CTX = multiprocessing.get_context("fork")
WORKER_PIDS: list[int] = []


def failing_task(x):
    raise ValueError(f"bad value {x}")


def serve(conn) -> None:
    """A minimal worker: apply ``fn`` to ``df`` and reply, until told to stop."""
    while True:
        try:
            message = protocol.recv(conn)
        except EOFError:
            return
        if message["op"] == "stop":
            return
        try:
            if message["op"] == "validate":
                raise ValidationError([("question", "is empty")])
            if message["op"] == "garbage" and hasattr(conn, "sendall"):
                conn.sendall(b"this is not a frame at all")
                continue
            if message["op"] == "truncate" and hasattr(conn, "sendall"):
                conn.sendall(protocol.pack({"id": message["id"], "x": "y" * 100})[:-10])
                conn.shutdown(socket.SHUT_WR)
                return
            result = message["fn"](message["df"])
            reply = {"id": message["id"], "pid": os.getpid(), "df": result,
                     "args": message["args"]}
        except Exception as exc:
            reply = protocol.error_message(message["id"], exc)
        protocol.send(conn, reply, fmt=message.get("reply_fmt"))


@pytest.fixture(autouse=True)
def no_leaked_segments():
    """Segments made by this process or its workers must all be gone after each test."""
    def ours() -> set[str]:
        return {n for pid in {os.getpid(), *WORKER_PIDS} for n in shm.list_segments(pid=pid)}

    before = ours()
    yield
    leaked = ours() - before
    for name in leaked:
        shm.unlink_segment(name)
    assert not leaked, f"shared-memory segments leaked: {leaked}"


@pytest.fixture(params=["pipe", "socketpair"])
def worker(request):
    if request.param == "pipe":
        parent, child = CTX.Pipe()
    else:
        parent, child = socket.socketpair()
    process = CTX.Process(target=serve, args=(child,), daemon=True)
    process.start()
    WORKER_PIDS.append(process.pid)
    child.close()
    yield parent
    with contextlib.suppress(OSError):
        protocol.send(parent, {"id": -1, "op": "stop"})
    process.join(10)
    if process.is_alive():
        process.kill()
        process.join()
    parent.close()


def frame_of(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"n": np.arange(rows), "q": [f"question {i}" for i in range(rows)],
                         "score": np.linspace(0, 1, rows)})


@pytest.mark.parametrize("fmt, rows", [(None, 10), ("arrow", 200_000), ("shm", 1000),
                                       ("pickle", 50), (None, 400_000)])
def test_round_trip_through_a_worker(worker, fmt, rows):
    df = frame_of(rows)
    task = {"id": 1, "op": "run", "df": df, "args": (1, "two"), "reply_fmt": fmt,
            "fn": lambda d: d.assign(q=d.q.str.upper())}     # defined here: cloudpickled
    protocol.send(worker, task, fmt=fmt)
    reply = protocol.recv(worker, timeout=60)
    assert reply["id"] == 1 and reply["pid"] != os.getpid() and reply["args"] == (1, "two")
    pd.testing.assert_frame_equal(reply["df"], df.assign(q=df.q.str.upper()))


def test_many_small_round_trips_keep_correlation(worker):
    for i in range(50):
        protocol.send(worker, {"id": i, "op": "run", "df": frame_of(3), "args": (),
                               "fn": len})
        assert protocol.recv(worker, timeout=30)["id"] == i


def test_worker_error_carries_its_traceback(worker):
    protocol.send(worker, {"id": 7, "op": "run", "df": 3, "args": (), "fn": failing_task})
    reply = protocol.recv(worker, timeout=30)
    assert protocol.is_error(reply) and reply["id"] == 7
    with pytest.raises(RemoteError, match="ValueError raised in worker pid") as info:
        protocol.raise_remote(reply)
    assert "failing_task" in info.value.remote_traceback
    assert isinstance(info.value.__cause__, ValueError)
    assert "bad value 3" in str(info.value.__cause__)


def test_dspex_error_in_worker_is_raised_as_itself(worker):
    protocol.send(worker, {"id": 8, "op": "validate"})
    with pytest.raises(ValidationError, match="question: is empty"):
        protocol.raise_remote(protocol.recv(worker, timeout=30))


def test_recv_times_out_when_nothing_arrives(worker):
    with pytest.raises(TimeoutError, match="No frame arrived"):
        protocol.recv(worker, timeout=0.2)


def test_peer_closing_gives_eof(worker):
    protocol.send(worker, {"id": -1, "op": "stop"})
    with pytest.raises(EOFError):
        protocol.recv(worker, timeout=30)


@pytest.fixture
def socket_worker():
    parent, child = socket.socketpair()
    process = CTX.Process(target=serve, args=(child,), daemon=True)
    process.start()
    WORKER_PIDS.append(process.pid)
    child.close()
    yield parent
    with contextlib.suppress(OSError):
        parent.shutdown(socket.SHUT_WR)      # the worker sees EOF and exits
    process.join(10)
    if process.is_alive():
        process.kill()
        process.join()
    parent.close()


def test_garbage_from_a_socket_peer_is_a_protocol_error(socket_worker):
    protocol.send(socket_worker, {"id": 1, "op": "garbage"})
    with pytest.raises(ProtocolError, match="Not a dspex frame"):
        protocol.recv(socket_worker, timeout=30)


def test_truncated_frame_from_a_socket_peer_is_a_protocol_error(socket_worker):
    protocol.send(socket_worker, {"id": 1, "op": "truncate"})
    with pytest.raises(ProtocolError, match="Truncated frame"):
        protocol.recv(socket_worker, timeout=30)


def test_frame_reader_on_a_raw_socket(socket_worker):
    df = frame_of(50_000)
    protocol.send(socket_worker, {"id": 3, "op": "run", "df": df, "args": (),
                                  "fn": lambda d: d.head(10)})
    reader, messages = protocol.FrameReader(), []
    socket_worker.settimeout(30)
    while not messages:
        chunk = socket_worker.recv(65536)
        assert chunk, "the worker closed the socket before replying"
        messages = reader.feed(chunk)
    pd.testing.assert_frame_equal(messages[0]["df"], df.head(10))
    protocol.send(socket_worker, {"id": -1, "op": "stop"})
