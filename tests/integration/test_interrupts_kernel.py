"""Interrupting ``%%dspex`` and ``%dspex --df`` in a real ipykernel (the kernel manager's
interrupt, as the notebook's stop button sends it), while the call waits on a slow LM.

The LM server runs in the test process, so the test knows when a request has arrived and
interrupts only then. What the cell shows is asserted: one line for a single call; for a run,
its summary (interrupted, finished / failed / not run counts) and one line, no warning with a
file path, no traceback.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from dspex_lab.testing import running_server

jupyter_client = pytest.importorskip("jupyter_client")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Kernel:
    """A real kernel and a client: run cells, collect what each one shows."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        self.km.kernel_spec.argv[0] = sys.executable
        self.km.start_kernel(env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def submit(self, code: str) -> str:
        return self.kc.execute(code)

    def outputs(self, msg_id: str, timeout: float = 120) -> tuple[list[dict], str]:
        """The iopub messages of ``msg_id`` until the kernel is idle, and the reply status."""
        found, deadline = [], time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            kind = msg["msg_type"]
            if kind == "comm_msg":  # widget updates may come from the run's threads
                found.append({"type": kind, **msg["content"]})
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            if kind in ("stream", "display_data", "execute_result", "error"):
                found.append({"type": kind, **msg["content"]})
        reply = self.kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:  # a late kernel_info_reply
            reply = self.kc.get_shell_msg(timeout=30)
        return found, reply["content"]["status"]

    def run(self, code: str, timeout: float = 120) -> list[dict]:
        outputs, status = self.outputs(self.submit(code), timeout)
        assert status == "ok", outputs
        return outputs

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def wait_for_requests(server, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while server.stats()["requests"] < count:
        assert time.monotonic() < deadline, f"the LM saw {server.stats()['requests']} requests"
        time.sleep(0.02)


def text_of(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["type"] == "stream":
            parts.append(out["text"])
        elif out["type"] == "error":
            parts.append("\n".join(out["traceback"]))
        elif out["type"] != "comm_msg":
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture
def kernel(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]),
               DSPEX_CACHE_DIR=str(tmp_path / "cache"), DSPY_CACHEDIR=str(tmp_path / "dspy"))
    k = Kernel(env, tmp_path)
    try:
        yield k
    finally:
        k.close()


def test_interrupts_read_as_one_line_and_a_run_says_what_is_left(kernel):
    with running_server() as server:
        kernel.run("%load_ext dspex_lab\n"
                   "import dspex_lab\n"
                   "from dspex_lab.workers import configure_pools\n"
                   "configure_pools({'general': {'size': 1}})\n"
                   f"dspex_lab.configure(lms={{'slow': {{'model': 'openai/dspex-embedded', "
                   f"'api_base': '{server.url}', 'api_key': 'x', 'cache': False, "
                   "'num_retries': 0}})\n"
                   "%config Dspex.lm = 'slow'")
        warm = kernel.run("%%dspex question -> answer\nWhat is 1 + 1?")  # the pool starts
        assert "answer='2'" in text_of(warm)

        # a single call: Ctrl-C while the LM has not answered
        server.configure(latency_ms=30_000)
        before = server.stats()["requests"]
        msg = kernel.submit("%%dspex question -> answer --no-cache\nWhat is 7 + 1?")
        wait_for_requests(server, before + 1)
        kernel.km.interrupt_kernel()
        outputs, status = kernel.outputs(msg)
        assert status == "error", outputs
        errors = [o for o in outputs if o["type"] == "error"]
        assert len(errors) == 1 and len(errors[0]["traceback"]) == 1, outputs
        line = errors[0]["traceback"][0]
        assert line.startswith("Interrupted after ") and line.endswith(
            " s; no answer arrived."), line
        assert len(text_of(outputs).splitlines()) == 1, text_of(outputs)

        # a DataFrame run: Ctrl-C after a few rows
        server.configure(latency_ms=150)
        before = server.stats()["requests"]
        msg = kernel.submit(
            "import pandas as pd\n"
            "qs = pd.DataFrame({'question': [f'What is {i} + 2?' for i in range(300)]})\n"
            "res << %dspex question -> answer --df qs --concurrency 2 --no-cache")
        wait_for_requests(server, before + 6)
        kernel.km.interrupt_kernel()
        outputs, status = kernel.outputs(msg)
        assert status == "error"
        text = text_of(outputs)
        assert "Warning" not in text and ".py:" not in text and "Traceback" not in text, text
        summary = next(o["data"]["text/plain"] for o in outputs if o["type"] == "display_data"
                       and 'class="dspex-run"' in o["data"].get("text/html", ""))
        assert summary.startswith("dspex run: interrupted · ") and " · 0 failed · " in summary
        assert "not run" in summary and "rerun to finish the " in summary
        errors = [o for o in outputs if o["type"] == "error"]
        assert len(errors) == 1 and len(errors[0]["traceback"]) == 1
        assert "rows finished and are in res, _dspex; rerun the cell" in errors[0]["traceback"][0]
        styles = [o["data"]["state"]["bar_style"] for o in outputs if o["type"] == "comm_msg"
                  and "bar_style" in o["data"].get("state", {})]
        assert styles and styles[-1] == "danger", styles  # the bar ends red: interrupted
        texts = [str(o["data"]["state"]["value"]).replace("\u2007", " ") for o in outputs
                 if o["type"] == "comm_msg" and isinstance(o["data"].get("state", {}).get(
                     "value"), str)]
        assert any("dspex run (interrupted)" in t for t in texts), texts[-4:]
        assert any("failed=0 not run=" in t for t in texts), texts[-4:]

        check = kernel.run("u = res.attrs['usage']\n"
                           "print(u['status'], u['errors'], u['ok'] + u['not_run'] == len(qs),"
                           " set(res.loc[res['status'] == 'not_run', 'error_type']))")
        printed = text_of(check).strip().splitlines()[-1]
        assert printed == "interrupted 0 True {'Interrupted'}", printed
