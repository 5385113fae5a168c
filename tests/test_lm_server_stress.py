"""The embedded LM server under load: thousands of concurrent requests, every answer exact.

Client threads in this process (which also runs the server, as a kernel does) and two client
processes post DSPy ChatAdapter prompts (arithmetic, lookups, ChainOfThought) over keep-alive
loopback connections at once. Before the server stopped using ``ast`` from its threads, a few
of these got a 500 (``SystemError: AST constructor recursion depth mismatch``).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy

from dspex_lab.testing import running_server

THREADS, PROCESSES, PROCESS_THREADS = 16, 2, 12
IN_PROCESS, PER_PROCESS = 2000, 1000         # 4,000 requests in all
TIMEOUT_S = 20.0

# A client process: reads [[url_path, body], ...] as JSON on stdin, posts them from a few
# threads over keep-alive connections, writes [[status, text], ...] as JSON on stdout.
_CLIENT = r"""
import http.client, json, sys, threading
from concurrent.futures import ThreadPoolExecutor
host, port, threads, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
local = threading.local()
def post(body):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return [resp.status, resp.read().decode()]
bodies = json.load(sys.stdin)
with ThreadPoolExecutor(threads) as pool:
    json.dump(list(pool.map(post, bodies)), sys.stdout)
"""


def _cases(count: int, offset: int) -> list[tuple[str, str, Any]]:
    """``(kind, question, expected answer)``: distinct arithmetic, lookups and CoT questions."""
    capitals = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"),
                ("Canada", "Ottawa"), ("Egypt", "Cairo")]
    cases = []
    for i in range(offset, offset + count):
        a, b, c = i % 97 + 2, i % 13 + 1, i // 7 + 3
        if i % 3 == 0:
            cases.append(("arith", f"What is {a} * ({b} + {c}) - {i}?", a * (b + c) - i))
        elif i % 3 == 1:
            country, capital = capitals[i % len(capitals)]
            cases.append(("lookup", f"What is the capital of {country}? (#{i})", capital))
        else:
            cases.append(("cot", f"Compute {c} times {a} minus {b}, case #{i}.", c * a - b))
    return cases


_SIGNATURES = {
    "arith": dspy.Signature("question -> answer: int"),
    "lookup": dspy.Signature("question -> answer: str"),
    "cot": dspy.ChainOfThought("question -> answer: int").predict.signature,
}


def _body(kind: str, question: str) -> str:
    messages = dspy.ChatAdapter().format(_SIGNATURES[kind], [], {"question": question})
    return json.dumps({"model": "dspex-embedded", "messages": messages})


def _check(case: tuple[str, str, Any], status: int, text: str) -> str | None:
    """None when the reply is a 200 whose parsed answer is exactly the expected one."""
    kind, question, expected = case
    if status != 200:
        return f"{question!r}: HTTP {status}: {text[:200]}"
    content = json.loads(text)["choices"][0]["message"]["content"]
    parsed = dspy.ChatAdapter().parse(_SIGNATURES[kind], content)
    if parsed["answer"] != expected or (kind == "cot" and not parsed.get("reasoning")):
        return f"{question!r}: expected {expected!r}, got {parsed!r}"
    return None


def test_thousands_of_concurrent_requests_from_threads_and_processes_are_all_exact():
    local_cases = _cases(IN_PROCESS, 0)
    process_cases = [_cases(PER_PROCESS, IN_PROCESS + k * PER_PROCESS) for k in range(PROCESSES)]
    local_bodies = [_body(k, q) for k, q, _ in local_cases]
    process_bodies = [json.dumps([_body(k, q) for k, q, _ in cases]) for cases in process_cases]
    with running_server() as server:
        host, port = server.host, server.port
        clients = [subprocess.Popen(
            [sys.executable, "-c", _CLIENT, host, str(port), str(PROCESS_THREADS),
             str(TIMEOUT_S)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(PROCESSES)]
        feeders = [threading.Thread(target=_feed, args=(proc, data), daemon=True)
                   for proc, data in zip(clients, process_bodies, strict=True)]
        for feeder in feeders:
            feeder.start()
        local = threading.local()

        def post(body: str) -> tuple[int, str]:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
            conn.request("POST", "/v1/chat/completions", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read().decode()

        with ThreadPoolExecutor(THREADS) as pool:
            local_replies = list(pool.map(post, local_bodies))
        process_replies = []
        for proc, feeder in zip(clients, feeders, strict=True):
            feeder.join(TIMEOUT_S)
            assert proc.stdout is not None
            out = proc.stdout.read()
            assert proc.wait(TIMEOUT_S) == 0, "a client process failed"
            process_replies.append([tuple(r) for r in json.loads(out)])
        stats = server.stats()

    problems = [p for case, reply in zip(local_cases, local_replies, strict=True)
                if (p := _check(case, *reply))]
    for cases, replies in zip(process_cases, process_replies, strict=True):
        problems += [p for case, reply in zip(cases, replies, strict=True)
                     if (p := _check(case, *reply))]
    total = IN_PROCESS + PROCESSES * PER_PROCESS
    assert problems == [], f"{len(problems)} of {total} answers were wrong: {problems[:5]}"
    assert stats["requests"] == stats["ok"] == total
    assert stats["error_count"] == 0, stats["errors"]


def _feed(proc: subprocess.Popen, data: str) -> None:
    """Write a client process's request bodies to its stdin (a thread: it reads as we write)."""
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
