"""HTTP for the LM server: routes, keep-alive, one write per response, SSE streaming.

Routes (``/v1`` prefix optional):

    POST /v1/chat/completions   OpenAI chat completions (``stream: true`` -> SSE)
    GET  /v1/models             the default model and every model seen
    GET  /v1/stats              totals (requests, errors by kind, tokens, per model)
    POST /v1/reset              zero the stats, re-arm ``[[fail:once:...]]`` markers
                                (``{"options": true}`` also restores the start options)
    GET  /v1/config             current options
    POST /v1/config             change options (JSON object of changes)
    GET  /v1/health             ``{"ok": true}``

Facts this relies on (see PITFALLS.md): with HTTP/1.1 keep-alive, a response written as
headers then body waits ~40 ms for a delayed ACK unless Nagle is off, so the handler sets
``disable_nagle_algorithm`` *and* writes each response in one call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dspex_lab.errors import DspexError
from dspex_lab.lm_server.app import LMApp, Reply, sse_bytes

__all__ = ["LMHTTPServer"]

log = logging.getLogger("dspex_lab.lm_server")


class LMHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its open connections, so ``close_all`` can end
    idle keep-alive connections and join their threads on stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024   # socketserver's 5 refuses connections when many clients start

    def __init__(self, address: tuple[str, int], app: LMApp) -> None:
        self.app = app
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection in its own daemon thread (tracked for shutdown)."""
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address), daemon=True,
                                  name=f"dspex-lm-conn-{client_address[1]}")
        with self._conn_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._conn_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def close_all(self, timeout: float = 2.0) -> None:
        """Close every open connection and wait (up to ``timeout`` s each) for its thread."""
        with self._conn_lock:
            items = list(self._connections.items())
        for sock, _ in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in items:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "dspex-lab-lm/1.0"
    server: LMHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # -- routing -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        app = self.server.app
        route = self._route()
        if route == "/models":
            self._send_json(200, app.models())
        elif route == "/stats":
            self._send_json(200, app.stats())
        elif route == "/config":
            self._send_json(200, app.options.public())
        elif route in ("/health", "/"):
            self._send_json(200, {"ok": True})
        else:
            self._not_found()

    def do_POST(self) -> None:
        app = self.server.app
        route = self._route()
        try:
            body = self._read_json()
        except ValueError as exc:
            self._send_json(400, _error(f"The request body is not valid JSON: {exc}"))
            return
        if route == "/chat/completions":
            self._send_reply(app.chat(body))
        elif route == "/reset":
            app.reset(options=bool((body or {}).get("options")))
            self._send_json(200, {"ok": True})
        elif route == "/config":
            try:
                self._send_json(200, app.configure(**(body or {})))
            except (DspexError, TypeError) as exc:
                self._send_json(400, _error(str(exc)))
        else:
            self._not_found()

    def _route(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path.removeprefix("/v1") or "/"

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _not_found(self) -> None:
        self._send_json(404, _error(f"No route for {self.command} {self.path}; the dspex-lab "
                                    "LM server serves /v1/chat/completions, /v1/models, "
                                    "/v1/stats, /v1/reset and /v1/config."))

    # -- writing -------------------------------------------------------------------------------
    def _send_reply(self, reply: Reply) -> None:
        app = self.server.app
        if reply.delay_s > 0 and app.stopping.wait(reply.delay_s):
            self.close_connection = True
            return
        if reply.fault in ("timeout", "drop"):  # no response at all
            app.stopping.wait(reply.hang_s)
            self.close_connection = True
            return
        if reply.body is not None:
            self._send_raw(reply)
        elif reply.events is None:
            self._send_json(reply.status, reply.payload or {}, reply.headers)
        elif reply.chunk_delay_s > 0:
            self._send_chunked_events(reply)
        else:
            body = b"".join(sse_bytes(e) for e in reply.events) + sse_bytes(None)
            self._send(200, body, "text/event-stream", {"Cache-Control": "no-cache"})

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, body, "application/json", headers)

    def _head(self, status: int, content_type: str, headers: dict[str, str] | None,
              length: int | None) -> bytes:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {status} {phrase}", f"Server: {self.server_version}",
                 f"Content-Type: {content_type}"]
        lines.append(f"Content-Length: {length}" if length is not None
                     else "Transfer-Encoding: chunked")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        self.log_request(status)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        """Status line, headers and body in a single write."""
        try:
            self.wfile.write(self._head(status, content_type, headers, len(body)) + body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_raw(self, reply: Reply) -> None:
        """A malformed reply's bytes; ``truncated``: announce more than is sent, then close."""
        body = reply.body or b""
        if reply.fault != "truncated":
            self._send(reply.status, body, reply.content_type, reply.headers)
            return
        self.close_connection = True
        cut = body[:len(body) // 2]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(self._head(reply.status, reply.content_type, reply.headers,
                                        len(body)) + cut)
            self.wfile.flush()

    def _send_chunked_events(self, reply: Reply) -> None:
        """SSE with a pause between chunks (``stream_chunk_ms``), as chunked transfer."""
        app = self.server.app
        head = self._head(200, "text/event-stream", {"Cache-Control": "no-cache"}, None)
        try:
            pending = head
            for event in [*(reply.events or []), None]:
                data = sse_bytes(event)
                self.wfile.write(pending + f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                pending = b""
                if event is not None and app.stopping.wait(reply.chunk_delay_s):
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None,
                      "param": None}}
