"""The embedded LM server over real HTTP, driven by real ``dspy.LM`` clients.

``engine="auto"`` is DSPy 3.4's native HTTP engine (lm15); ``engine="litellm"`` goes through
litellm. Both talk to the same loopback server.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Literal

import dspy
import httpx
import pytest
from dspy.utils.exceptions import LMError, LMRateLimitError, LMServerError

from dspex_lab.errors import ConfigurationError
from dspex_lab.lm_server import LMServer
from dspex_lab.testing import embedded_lm, make_lm

ADAPTERS = [dspy.ChatAdapter, dspy.JSONAdapter]
ROOT = Path(__file__).resolve().parents[2]


class Typed(dspy.Signature):
    """Answer with typed fields."""

    question: str = dspy.InputField()
    answer: int = dspy.OutputField()
    confidence: float = dspy.OutputField()
    is_math: bool = dspy.OutputField()
    keywords: list[str] = dspy.OutputField()
    extra: dict[str, int] = dspy.OutputField()
    label: Literal["easy", "hard"] = dspy.OutputField()


def _adapter(cls):
    # No silent ChatAdapter -> JSONAdapter fallback: each adapter must succeed on its own.
    return cls(use_json_adapter_fallback=False) if cls is dspy.ChatAdapter else cls()


# -- DSPy modules through HTTP ------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["auto", "litellm"])
@pytest.mark.parametrize("adapter_cls", ADAPTERS)
def test_predict_typed_outputs(lm_server, engine, adapter_cls):
    lm = make_lm(lm_server, engine=engine)
    with dspy.context(lm=lm, adapter=_adapter(adapter_cls)):
        pred = dspy.Predict(Typed)(question="What is 12 * 3?")
    assert pred.answer == 36
    assert isinstance(pred.confidence, float) and 0 <= pred.confidence <= 1
    assert isinstance(pred.is_math, bool)
    assert isinstance(pred.keywords, list) and all(isinstance(k, str) for k in pred.keywords)
    assert isinstance(pred.extra, dict) and all(isinstance(v, int) for v in pred.extra.values())
    assert pred.label in ("easy", "hard")


@pytest.mark.parametrize("adapter_cls", ADAPTERS)
def test_chain_of_thought(dspy_lm, adapter_cls):
    with dspy.context(lm=dspy_lm, adapter=_adapter(adapter_cls)):
        pred = dspy.ChainOfThought("question -> answer")(question="What is the capital of Italy?")
    assert pred.answer == "Rome"
    assert "Italy" in pred.reasoning


@pytest.mark.parametrize("engine", ["auto", "litellm"])
@pytest.mark.parametrize("adapter_cls", ADAPTERS)
def test_react_calls_a_real_tool_and_answers_with_its_result(lm_server, engine, adapter_cls):
    calls = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b + 1000  # a result the LM could not guess: it must come from the tool

    lm = make_lm(lm_server, engine=engine)
    with dspy.context(lm=lm, adapter=_adapter(adapter_cls)):
        pred = dspy.ReAct("question -> answer: int", tools=[add], max_iters=5)(
            question="What is 20 + 22?")
    assert calls == [(20, 22)]
    assert pred.answer == 1042
    assert pred.trajectory["tool_name_1"] == "finish"


def test_same_prompt_same_answer(dspy_lm, lm_server):
    signature = "text -> topic, score: float, tags: list[str]"
    with dspy.context(lm=dspy_lm):
        first = dspy.Predict(signature)(text="Solar panels got cheaper again in 2024.")
        second = dspy.Predict(signature)(text="Solar panels got cheaper again in 2024.")
    assert first.toDict() == second.toDict()
    assert lm_server.stats()["requests"] == 2          # cache=False: both reached the server


def test_stats_match_client_side_usage(dspy_lm, lm_server):
    with dspy.context(lm=dspy_lm):
        for q in ("What is 1 + 1?", "What is the capital of Spain?", "Tell me about owls."):
            dspy.ChainOfThought("question -> answer")(question=q)
    usage = [entry["usage"] for entry in dspy_lm.history]
    stats = lm_server.stats()
    assert stats["requests"] == stats["ok"] == len(usage) == 3
    assert stats["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
    assert stats["completion_tokens"] == sum(u["completion_tokens"] for u in usage)
    assert stats["models"] == {"dspex-embedded": 3}


def test_any_model_name_is_accepted_and_echoed(lm_server):
    lm = make_lm(lm_server, model="my-own-model")
    assert lm("What is 2 + 2?") == ["4"]
    assert lm.history[-1]["response_model"] == "my-own-model"
    listed = json.load(urllib.request.urlopen(f"{lm_server.url}/models"))
    assert "my-own-model" in [m["id"] for m in listed["data"]]


# -- streaming ----------------------------------------------------------------------------------

def _sse(raw: bytes) -> list[str]:
    return [line[len("data: "):] for line in raw.decode().split("\n") if line.startswith("data: ")]


def test_streaming_over_raw_http(lm_server):
    body = {"model": "dspex-embedded", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    request = urllib.request.Request(f"{lm_server.url}/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        data = _sse(response.read())
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Paris"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_streaming_with_pauses_uses_chunked_transfer(lm_server):
    lm_server.configure(stream_chunk_ms=30)
    try:
        body = {"model": "x", "stream": True,
                "messages": [{"role": "user", "content": "Describe the largest planet."}]}
        arrivals = []
        with httpx.Client() as client, client.stream(
                "POST", f"{lm_server.url}/chat/completions", json=body) as response:
            assert response.headers.get("transfer-encoding") == "chunked"
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.perf_counter())
    finally:
        lm_server.configure(stream_chunk_ms=0)
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 2)   # really spread out


@pytest.mark.parametrize("engine", ["auto", "litellm"])
def test_streaming_through_dspy_streamify(lm_server, engine):
    lm = make_lm(lm_server, engine=engine)
    program = dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[
        dspy.streaming.StreamListener(signature_field_name="answer")])

    async def run():
        chunks, final = [], None
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            async for item in program(question="What is 6 * 7?"):
                if isinstance(item, dspy.streaming.StreamResponse):
                    chunks.append(item.chunk)
                elif isinstance(item, dspy.Prediction):
                    final = item
        return chunks, final

    chunks, final = asyncio.run(run())
    assert final.answer == "42" and "".join(chunks).strip() == "42"
    assert lm_server.stats()["streams"] >= 1


# -- latency and faults -------------------------------------------------------------------------

def test_latency_is_applied(lm_server):
    lm = make_lm(lm_server)
    lm("warm up the connection")
    lm_server.configure(latency_ms=150)
    try:
        start = time.perf_counter()
        lm("What is 3 + 4?")
        elapsed = time.perf_counter() - start
    finally:
        lm_server.configure(latency_ms=0)
    assert 0.15 <= elapsed < 2.0


@pytest.mark.parametrize("engine", ["auto", "litellm"])
def test_429_becomes_dspy_rate_limit_error_with_retry_after(lm_server, engine):
    lm_server.configure(retry_after_s=3)
    try:
        with pytest.raises(LMRateLimitError) as info:
            make_lm(lm_server, engine=engine)("[[fail:429]] hello")
    finally:
        lm_server.configure(retry_after_s=1)
    assert info.value.status == 429 and info.value.retry_after == 3.0


def test_fail_once_then_success_with_retries(lm_server):
    lm_server.reset()
    lm = make_lm(lm_server, num_retries=1)
    assert lm("[[fail:once:500]] What is 5 + 5?") == ["10"]
    stats = lm_server.stats()
    assert (stats["requests"], stats["ok"], stats["errors"]) == (2, 1, {"500": 1})
    with pytest.raises(LMServerError):
        make_lm(lm_server, num_retries=0)("[[fail:once:500]] a different prompt")


def test_error_rate_one_fails_every_call_with_the_chosen_kind(lm_server):
    lm_server.configure(error_rate=1.0, error_kinds=["500"])
    try:
        lm = make_lm(lm_server)
        for i in range(3):
            with pytest.raises(LMServerError):
                lm(f"question {i}")
    finally:
        lm_server.configure(error_rate=0.0, error_kinds=["429", "500"])


@pytest.mark.parametrize("marker", ["timeout", "drop"])
def test_timeout_and_drop_fail_fast_on_the_client(lm_server, marker):
    lm = make_lm(lm_server, timeout=0.3)
    start = time.perf_counter()
    with pytest.raises(LMError):
        lm(f"[[fail:{marker}]] hello")
    assert time.perf_counter() - start < 3.0


# -- HTTP plumbing ------------------------------------------------------------------------------

def test_keep_alive_reuses_one_connection(lm_server):
    conn = http.client.HTTPConnection("127.0.0.1", lm_server.port, timeout=5)
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "What is 1 + 2?"}]})
        sockets = set()
        for _ in range(5):
            conn.request("POST", "/v1/chat/completions", body=body,
                         headers={"Content-Type": "application/json"})
            reply = json.loads(conn.getresponse().read())
            sockets.add(id(conn.sock))
            assert reply["choices"][0]["message"]["content"] == "3"
        assert len(sockets) == 1
    finally:
        conn.close()


def test_control_endpoints(lm_server):
    def call(method, route, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(f"{lm_server.url}{route}", data=data, method=method)
        with urllib.request.urlopen(req) as response:
            return json.loads(response.read())

    assert call("GET", "/health") == {"ok": True}
    assert call("POST", "/config", {"seed": 5})["seed"] == 5
    assert call("GET", "/config")["seed"] == 5
    call("POST", "/config", {"seed": 0})
    call("POST", "/reset", {})
    assert call("GET", "/stats")["requests"] == 0
    with pytest.raises(urllib.error.HTTPError) as info:
        call("POST", "/config", {"error_rate": 7})
    assert info.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as info:
        call("GET", "/nothing")
    assert info.value.code == 404


def test_stop_ends_idle_keep_alive_and_hanging_requests():
    before = threading.active_count()
    server = LMServer(hang_s=30).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/v1/health")
    conn.getresponse().read()                        # an idle keep-alive connection stays open
    hanging = threading.Thread(target=lambda: _swallow(make_lm(server, timeout=20),
                                                       "[[fail:timeout]] x"))
    hanging.start()
    time.sleep(0.2)
    start = time.perf_counter()
    server.stop()
    assert time.perf_counter() - start < 3.0
    hanging.join(5)
    conn.close()
    assert not server.running and threading.active_count() <= before + 1


def _swallow(lm, prompt):
    with contextlib.suppress(Exception):
        lm(prompt)


# -- process mode and the command line ----------------------------------------------------------

def test_process_mode_with_configure_stats_and_a_responder():
    with LMServer(responder=lambda p: {"answer": f"echo: {p.question}"}).start(
            mode="process") as server:
        proc = server._proc
        lm = make_lm(server)
        assert lm("ping") == ["echo: ping"]
        server.configure(latency_ms=120)
        start = time.perf_counter()
        lm("pong")
        assert time.perf_counter() - start >= 0.12
        assert server.stats()["requests"] == 2
        server.reset()
        assert server.stats()["requests"] == 0
        with pytest.raises(ConfigurationError, match="responder"):
            server.configure(responder=len)
    assert proc.poll() is not None and not server.running


def test_embedded_lm_context_manager():
    with embedded_lm(latency_ms=1, rules=[{"match": "favourite", "answer": "blue"}]) as (srv, lm):
        with dspy.context(lm=lm):
            assert dspy.Predict("question -> answer")(question="favourite colour?").answer == "blue"
        assert srv.running
    assert not srv.running


def test_command_line_prints_the_url_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "dspex_lab.lm_server", "--port", "0",
                             "--latency-ms", "5", "--error-kinds", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"dspex-lab LM server listening on (http://127\.0\.0\.1:\d+/v1)\n",
                             line)
        assert match, line
        with urllib.request.urlopen(f"{match.group(1)}/config") as response:
            config = json.loads(response.read())
        assert config["latency_ms"] == 5 and config["error_kinds"] == ["500"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_command_line_rejects_bad_options():
    result = subprocess.run([sys.executable, "-m", "dspex_lab.lm_server", "--error-rate", "3"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "between 0 and 1" in result.stderr
