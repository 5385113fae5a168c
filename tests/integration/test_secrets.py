"""A provider that echoes the API key in its 401 body: the key must show up nowhere.

A tiny loopback server (below) answers every chat completion with a 401 whose message
repeats the key and the Authorization header, as some providers do. ``run`` (real worker
processes, and an in-kernel pool) and ``predict`` (in a worker, and in the kernel) then fail
with that message, and the test looks for the key in everything dspex_lab keeps or shows: the
result frame, the exception and its traceback, the files of the spill and cache directories,
the call history and a telemetry export.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dspy
import pandas as pd
import pytest

import dspex_lab
from dspex_lab import history, telemetry
from dspex_lab.cache import ResultCache, set_cache
from dspex_lab.errors import DspexError

SECRET = "dspexTestKey_4f9c2a7b1e55d0"        # does not look like sk-...: only known secrets
ENV_SECRET = "dspexEnvKey_93be17c4a0"


class _EchoingProvider(BaseHTTPRequestHandler):
    """401 for every request, repeating the key it was sent (and the whole header)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        body = json.dumps({"error": {
            "message": f"Incorrect API key provided: {key}. You sent 'Authorization: {auth}'.",
            "type": "invalid_request_error", "code": "invalid_api_key", "param": None,
        }}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProvider)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path / "cache"))
    set_cache(ResultCache(path=tmp_path / "cache" / "results.sqlite"))
    telemetry.clear()
    history.clear()
    yield tmp_path
    set_cache(None)


def _texts(root: Path) -> str:
    """Every file under ``root``, as text (binary files decoded leniently)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(root.rglob("*")) if p.is_file())


def _assert_nowhere(secret: str, frame: pd.DataFrame, error: BaseException, root: Path) -> None:
    assert frame["error"].notna().all(), "the provider should have refused every row"
    assert "invalid" in frame["error"].iloc[0].lower() or "key" in frame["error"].iloc[0]
    shown = {
        "result frame": frame.to_csv() + repr(frame) + repr(frame.attrs),
        "exception": str(error) + repr(error) + "".join(traceback.format_exception(error))
                     + str(getattr(error, "remote_traceback", "")),
        "history": "\n".join(f"{r!r} {r.error}" for r in history.recent(50)),
        "telemetry": telemetry.export(root / "export" / "events.jsonl").read_text(),
        "spill and cache files": _texts(root / "cache"),
    }
    assert shown["spill and cache files"], "the run should have spilled its parts"
    leaks = [where for where, text in shown.items() if secret in text]
    assert leaks == [], f"the secret leaked into: {', '.join(leaks)}"


def _question_rows() -> pd.DataFrame:
    return pd.DataFrame({"question": [f"What is {i} + 1?" for i in range(3)]})


@pytest.mark.parametrize("how", ["dspy.LM", "named LM"])
def test_an_echoed_api_key_shows_nowhere_after_runs_in_workers(provider, dirs, how):
    lm = dspy.LM("openai/echo-model", api_base=provider, api_key=SECRET, num_retries=0,
                 cache=False)
    if how == "named LM":
        dspex_lab.configure(lms={"echo": lm})
        lm = "echo"
    try:
        frame = dspex_lab.run("question -> answer", _question_rows(), lm=lm, max_retries=0,
                              progress=False)
        with pytest.raises(DspexError) as caught:
            dspex_lab.predict("question -> answer", question="What is 2 + 2?", lm=lm,
                              cache=False)
    finally:
        if how == "named LM":
            dspex_lab.configure(lms={"echo": None})
    assert caught.value.__class__.__name__ == "LMError"
    _assert_nowhere(SECRET, frame, caught.value, dirs)


def test_a_provider_key_from_the_environment_shows_nowhere(provider, dirs, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_SECRET)      # what the LM sends: no api_key=
    lm = dspy.LM("openai/echo-model", api_base=provider, num_retries=0, cache=False)
    with cf.ThreadPoolExecutor(2) as pool:                 # in the kernel, which has the env
        frame = dspex_lab.run("question -> answer", _question_rows(), lm=lm, pool=pool,
                              max_retries=0, progress=False)
    with pytest.raises(DspexError) as caught:
        dspex_lab.predict("question -> answer", question="What is 2 + 2?", lm=lm, cache=False,
                          implementation="native")
    _assert_nowhere(ENV_SECRET, frame, caught.value, dirs)
