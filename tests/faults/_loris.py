"""A tiny OpenAI-compatible loopback server for the fault tests: it answers every chat
request with ``answer: <n>`` where ``n`` is the request's row number (``row <n>`` in the
prompt), and trickles the reply a byte at a time (slow-loris) when the prompt holds
``[[loris]]`` -- far slower than any read timeout notices, since each byte resets it."""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ROW = re.compile(r"row (\d+)")


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        prompt = json.loads(body)["messages"][-1]["content"]
        row = _ROW.search(prompt)
        content = f"[[ ## answer ## ]]\n{row.group(1) if row else '?'}\n\n[[ ## completed ## ]]"
        reply = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": "loris",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        try:
            if "[[loris]]" not in prompt:
                self.wfile.write(reply)
                return
            pause = self.server.trickle_s  # type: ignore[attr-defined]
            for byte in reply:  # each byte well inside a read timeout
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(pause)
        except OSError:  # the client gave up
            pass


class LorisServer:
    """``with LorisServer(trickle_s) as url:`` -- the server runs in a daemon thread; a
    ``[[loris]]`` reply (~240 bytes) takes ``240 * trickle_s`` seconds."""

    def __init__(self, trickle_s: float = 0.25) -> None:
        self.trickle_s = trickle_s

    def __enter__(self) -> str:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.trickle_s = self.trickle_s  # type: ignore[attr-defined]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
