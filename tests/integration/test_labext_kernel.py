"""The panel's comm against a real ipykernel, speaking the Jupyter protocol the way JupyterLab does.

Checks the two behaviours the frontend relies on: a kernel without the target closes the comm at
once (the panel then asks for ``%load_ext dspex_lab``), and a registered kernel answers
``comm_open`` with a snapshot, pushes updates, acks actions and stops its thread on close.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kernel():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.kernel_spec.argv[0] = sys.executable
    km.start_kernel(cwd=str(ROOT), env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def send(kc, msg_type: str, content: dict) -> None:
    kc.shell_channel.send(kc.session.msg(msg_type, content))


def iopub_until(kc, predicate, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.05, deadline - time.monotonic()))
        except Exception:
            break
        if predicate(msg):
            return msg
    raise AssertionError("the kernel did not send the expected message in time")


def comm_data(comm_id: str, kind: str):
    def match(msg: dict) -> bool:
        content = msg["content"]
        return (msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id
                and content["data"].get("type") == kind)
    return match


def run(kc, code: str) -> str:
    """Execute code; return its stdout (fails on an error)."""
    reply = kc.execute_interactive(code, timeout=30, output_hook=(out := _Collect()).hook)
    assert reply["content"]["status"] == "ok", out.text
    return out.text


class _Collect:
    def __init__(self) -> None:
        self.text = ""

    def hook(self, msg: dict) -> None:
        if msg["msg_type"] == "stream":
            self.text += msg["content"]["text"]
        elif msg["msg_type"] == "error":
            self.text += "\n".join(msg["content"]["traceback"])


@pytest.mark.slow
def test_unregistered_kernel_closes_the_comm(kernel):
    comm_id = uuid.uuid4().hex
    send(kernel, "comm_open", {"comm_id": comm_id, "target_name": "dspex_lab", "data": {}})
    iopub_until(kernel, lambda m: m["msg_type"] == "comm_close"
                and m["content"]["comm_id"] == comm_id)


@pytest.mark.slow
def test_registered_kernel_streams_snapshots(kernel):
    assert run(kernel, "from dspex_lab.labext import register_comm_target\n"
                       "print(register_comm_target(get_ipython()))").strip() == "True"
    comm_id = uuid.uuid4().hex
    send(kernel, "comm_open", {"comm_id": comm_id, "target_name": "dspex_lab", "data": {}})
    first = iopub_until(kernel, comm_data(comm_id, "snapshot"))
    assert set(first["content"]["data"]) >= {"pools", "recent", "totals"}

    run(kernel, "from dspex_lab import telemetry\n"
                "for _ in range(3):\n"
                "    telemetry.emit('lm.call', model='m', latency_ms=12.0, prompt_tokens=10,\n"
                "                   completion_tokens=5, cost=0.0)\n")
    iopub_until(kernel, lambda m: comm_data(comm_id, "snapshot")(m)
                and m["content"]["data"]["totals"]["calls"] >= 3)

    send(kernel, "comm_msg", {"comm_id": comm_id, "data": {"type": "restart_pools"}})
    ack = iopub_until(kernel, comm_data(comm_id, "ack"))["content"]["data"]
    assert ack["action"] == "restart_pools" and isinstance(ack["ok"], bool)

    send(kernel, "comm_close", {"comm_id": comm_id, "data": {}})
    count = ("import threading\n"
             "print(sum(t.name == 'dspex-lab-comm' for t in threading.enumerate()))")
    deadline = time.monotonic() + 5
    while run(kernel, count).strip() != "0":
        assert time.monotonic() < deadline, "the sender thread did not stop"
        time.sleep(0.1)
