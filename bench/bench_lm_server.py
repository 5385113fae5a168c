"""Embedded LM server speed: sequential keep-alive round trips and DSPy batch throughput.

    $ python bench/bench_lm_server.py [--requests 300] [--rows 200]

Baselines are measured in the same run:
* round trips: a plain ``http.server`` handler (Nagle on, headers and body written separately,
  the usual way) against this server (Nagle off, one write per response);
* ``dspy.Predict.batch`` at 20 ms latency: server in a thread (shares the client's GIL) against
  the server in its own process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from dspex_lab.lm_server import LMServer

BODY = json.dumps({"model": "dspex-embedded",
                   "messages": [{"role": "user", "content": "What is 2 + 3?"}]})


class _Naive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"choices": [{"message": {"role": "assistant", "content": "5"}}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def round_trips(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=BODY,
                     headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        times.append(time.perf_counter() - start)
    conn.close()
    return times


def bench_round_trips(n: int) -> None:
    naive = ThreadingHTTPServer(("127.0.0.1", 0), _Naive)
    naive.daemon_threads = True
    threading.Thread(target=naive.serve_forever, daemon=True).start()
    base = statistics.median(round_trips(naive.server_address[1], min(n, 50)))
    naive.shutdown()
    naive.server_close()
    for mode in ("thread", "process"):
        with LMServer().start(mode=mode) as server:
            round_trips(server.port, 20)
            p50 = statistics.median(round_trips(server.port, n))
        print(f"round trip p50, {mode:7s}: {p50 * 1e3:7.2f} ms   (naive http.server "
              f"{base * 1e3:.2f} ms -> {base / p50:.1f}x faster)")


def bench_batch(rows: int) -> None:
    import dspy

    examples = [dspy.Example(question=f"What is {i} + {i}?").with_inputs("question")
                for i in range(rows)]
    program = dspy.Predict("question -> answer")
    results = {}
    for mode in ("thread", "process"):
        with LMServer(latency_ms=20).start(mode=mode) as server:
            lm = server.lm(num_retries=0)
            with dspy.context(lm=lm):
                program.batch(examples[:8], num_threads=8, disable_progress_bar=True)
                start = time.perf_counter()
                out = program.batch(examples, num_threads=16, disable_progress_bar=True)
                results[mode] = rows / (time.perf_counter() - start)
            assert out[3].answer == "6", out[3]
    print(f"Predict.batch, {rows} rows, 20 ms latency, 16 threads: thread server "
          f"{results['thread']:.0f} rows/s, process server {results['process']:.0f} rows/s "
          f"(process/thread {results['process'] / results['thread']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    bench_round_trips(args.requests)
    bench_batch(args.rows)


if __name__ == "__main__":
    main()
