"""The server's logic without HTTP: a request body in, a reply (or a fault) out, plus stats.

Token usage is a cheap deterministic estimate: ``ceil(len(text) / 4)`` characters-per-token
for each message's text (prompt) and for each choice's text (completion). A completion longer
than the request's ``max_tokens`` (or ``max_completion_tokens``) is cut to it, with
``finish_reason: "length"``, as a hosted model does. The same numbers go
into the response's ``usage`` and into ``stats()``, so a test can compare the server's totals
with what the client counted.

    >>> app = LMApp()
    >>> reply = app.chat({"messages": [{"role": "user", "content": "What is 2 + 3?"}]})
    >>> reply.status, reply.payload["choices"][0]["message"]["content"]
    (200, '5')
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.lm_server.answers import compose
from dspex_lab.lm_server.options import (
    MALFORMED_KINDS,
    Fault,
    ServerOptions,
    decide_fault,
    delay_seconds,
)
from dspex_lab.lm_server.prompts import ParsedPrompt, message_text, parse_request, render_completion

__all__ = ["DEFAULT_MODEL", "LMApp", "Reply", "estimate_tokens"]

log = logging.getLogger("dspex_lab.lm_server")

DEFAULT_MODEL = "dspex-embedded"
_MAX_TRACKED_PROMPTS = 200_000
_ERROR_TYPES = {
    "429": ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached (injected by the "
            "dspex-lab LM server)."),
    "500": ("server_error", "internal_error", "The server had an error while processing your "
            "request (injected by the dspex-lab LM server)."),
}


def estimate_tokens(text: str) -> int:
    """About four characters per token, at least one for non-empty text.

    >>> estimate_tokens("abcdefgh"), estimate_tokens("abc"), estimate_tokens("")
    (2, 1, 0)
    """
    return (len(text) + 3) // 4


@dataclass
class Reply:
    """What to send: a JSON ``payload``, or SSE ``events`` when streaming, or raw ``body``
    bytes (a malformed reply; ``fault="truncated"`` sends them short of their announced
    length, then closes), or nothing (``fault`` is ``timeout``/``drop``: hang ``hang_s`` then
    close the connection)."""

    status: int = 200
    payload: dict[str, Any] | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    events: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fault: str | None = None
    hang_s: float = 0.0
    chunk_delay_s: float = 0.0


class LMApp:
    """Answers chat completions, injects faults and latency, and keeps stats. Thread-safe."""

    def __init__(self, options: ServerOptions | None = None) -> None:
        self.options = self.initial_options = options or ServerOptions()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._seen: dict[str, int] = {}
        self._bucket: tuple[float, float] | None = None  # (level, monotonic time)
        self._reset_stats()

    # -- control -------------------------------------------------------------------------------
    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change options at run time; returns the new options as data."""
        with self._lock:
            self.options = self.options.with_changes(**changes)
            return self.options.public()

    def reset(self, options: bool = False) -> None:
        """Zero the stats and forget which prompts were seen (``[[fail:once:...]]`` re-arms);
        with ``options=True`` also restore the options the server started with."""
        with self._lock:
            self._reset_stats()
            self._seen.clear()
            self._bucket = None
            if options:
                self.options = self.initial_options

    def _reset_stats(self) -> None:
        self._started = time.time()
        self._stats: dict[str, Any] = {"requests": 0, "ok": 0, "streams": 0, "prompt_tokens": 0,
                                       "completion_tokens": 0}
        self._errors: Counter[str] = Counter()
        self._models: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        """Totals since start (or the last reset): requests, ok, errors by kind, tokens,
        requests per model."""
        with self._lock:
            out = dict(self._stats)
            out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
            out["errors"] = dict(self._errors)
            out["error_count"] = sum(self._errors.values())
            out["models"] = dict(self._models)
            out["since"] = self._started
            return out

    def models(self) -> dict[str, Any]:
        """The ``GET /v1/models`` payload: the default model and every model seen."""
        with self._lock:
            names = [DEFAULT_MODEL, *(m for m in self._models if m != DEFAULT_MODEL)]
        return {"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "dspex-lab"} for n in names]}

    # -- completions ---------------------------------------------------------------------------
    def chat(self, body: Any) -> Reply:
        """Handle one ``POST /v1/chat/completions`` body."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._bad_request("The body must be a JSON object with a 'messages' list.")
        options = self.options
        prompt = parse_request(body)
        text = "\n".join(message_text(m) for m in prompt.messages)
        with self._lock:
            self._stats["requests"] += 1
            self._models[prompt.model] += 1
            attempt = self._seen.get(prompt.key, 0)
            if len(self._seen) >= _MAX_TRACKED_PROMPTS:
                self._seen.clear()
            self._seen[prompt.key] = attempt + 1
        delay = delay_seconds(options, prompt.key, text)
        limit = self._take_request(options)
        if limit is not None and limit["wait"] > 0:
            return self._limited(options, limit, delay)
        fault = decide_fault(options, prompt.key, text, attempt)
        if fault is not None:
            return self._fault(fault, options, delay)
        try:
            reply = self._answer(body, prompt, options)
        except Exception as exc:  # a user responder that raises becomes a 500, not a crash
            log.exception("the LM server could not answer")
            return self._error(500, "responder", "server_error",
                               f"The dspex-lab LM server could not answer: "
                               f"{type(exc).__name__}: {exc}")
        reply.delay_s = delay
        if limit is not None and options.ratelimit_headers:
            reply.headers.update(_limit_headers(limit))
        return reply

    # -- the request limit (a token bucket) ------------------------------------------------------
    def _take_request(self, options: ServerOptions) -> dict[str, float] | None:
        """Take one request from the bucket: None without a limit, else the limit, what
        remains, seconds until it is full again, and ``wait`` > 0 when none was left."""
        if options.request_limit <= 0:
            return None
        capacity = float(options.request_limit)
        rate = capacity / options.limit_window_s
        now = time.monotonic()
        with self._lock:
            level, stamp = self._bucket or (capacity, now)
            level = min(capacity, level + (now - stamp) * rate)
            wait = 0.0
            if level >= 1.0:
                level -= 1.0
            else:
                wait = (1.0 - level) / rate
            self._bucket = (level, now)
        return {"limit": capacity, "remaining": float(int(level)), "wait": wait,
                "reset": (capacity - level) / rate}

    def _limited(self, options: ServerOptions, limit: dict[str, float], delay: float) -> Reply:
        with self._lock:
            self._errors["429"] += 1
        reply = self._error_reply(429, "rate_limit_error", "rate_limit_exceeded",
                                  f"Rate limit reached: {int(limit['limit'])} requests per "
                                  f"{options.limit_window_s:g} s (dspex-lab LM server).")
        reply.headers["Retry-After"] = f"{limit['wait']:.3f}"
        if options.ratelimit_headers:
            reply.headers.update(_limit_headers(limit))
        reply.delay_s = min(delay, 0.001)
        return reply

    def _answer(self, body: dict[str, Any], prompt: ParsedPrompt, options: ServerOptions) -> Reply:
        responder = options.responder_callable()
        n = max(1, min(int(body.get("n") or 1), 16))
        texts = [render_completion(prompt, compose(prompt, seed=options.seed, responder=responder,
                                                   rules=options.rules, salt=i))
                 for i in range(n)]
        limit = _max_tokens(body)
        cut = [limit is not None and estimate_tokens(t) > limit for t in texts]
        texts = [t[:4 * limit] if c else t for t, c in zip(texts, cut, strict=True)]
        finish = ["length" if c else "stop" for c in cut]
        prompt_tokens = sum(estimate_tokens(message_text(m)) for m in prompt.messages)
        completion_tokens = sum(estimate_tokens(t) for t in texts)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        stream = bool(body.get("stream"))
        with self._lock:
            self._stats["ok"] += 1
            self._stats["streams"] += int(stream)
            self._stats["prompt_tokens"] += prompt_tokens
            self._stats["completion_tokens"] += completion_tokens
        ident = f"chatcmpl-{next(self._ids)}-{prompt.key[:12]}"
        if stream:
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _stream_events(ident, prompt.model, texts[0], usage if include else None,
                                    finish[0])
            return Reply(events=events, chunk_delay_s=options.stream_chunk_ms / 1000.0)
        choices = [{"index": i, "message": {"role": "assistant", "content": t},
                    "finish_reason": finish[i], "logprobs": None} for i, t in enumerate(texts)]
        return Reply(payload={"id": ident, "object": "chat.completion", "created": int(time.time()),
                              "model": prompt.model, "system_fingerprint": "dspex-lab",
                              "choices": choices, "usage": usage})

    def _fault(self, fault: Fault, options: ServerOptions, delay: float) -> Reply:
        with self._lock:
            self._errors[fault.kind] += 1
        if fault.kind in ("timeout", "drop"):
            hang = options.hang_s if fault.kind == "timeout" else 0.0
            return Reply(status=0, fault=fault.kind, hang_s=hang)
        if fault.kind in MALFORMED_KINDS:
            reply = _malformed(fault.kind)
            reply.delay_s = delay
            return reply
        reply = self._error_reply(int(fault.kind), *_ERROR_TYPES[fault.kind][:2],
                                  _ERROR_TYPES[fault.kind][2])
        if fault.kind == "429":
            reply.headers["Retry-After"] = _format_seconds(options.retry_after_s)
            reply.headers["x-ratelimit-remaining-requests"] = "0"
        reply.delay_s = delay
        return reply

    def _bad_request(self, message: str) -> Reply:
        return self._error(400, "bad_request", "invalid_request_error", message)

    def _error(self, status: int, kind: str, error_type: str, message: str) -> Reply:
        with self._lock:
            self._stats["requests"] += 1
            self._errors[kind] += 1
        return self._error_reply(status, error_type, kind, message)

    @staticmethod
    def _error_reply(status: int, error_type: str, code: str, message: str) -> Reply:
        return Reply(status=status, payload={"error": {"message": message, "type": error_type,
                                                       "code": code, "param": None}})


_HTML_ERROR = (b"<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
               b"<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx"
               b"</center>\r\n</body>\r\n</html>\r\n")


def _malformed(kind: str) -> Reply:
    """A reply as a broken provider or proxy sends it (see ``options``: the malformed kinds)."""
    good = json.dumps({"id": "chatcmpl-malformed", "object": "chat.completion", "created": 0,
                       "model": DEFAULT_MODEL, "choices": [{
                           "index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "CONTENT"}}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                 "total_tokens": 2}}).encode()
    if kind == "badjson":
        return Reply(body=good[:len(good) // 2])              # cut mid-way, but sent whole
    if kind == "badutf8":
        return Reply(body=good.replace(b"CONTENT", b"caf\xe9 \xff\xfe"))
    if kind == "truncated":
        return Reply(body=good, fault="truncated")
    return Reply(status=500, body=_HTML_ERROR, content_type="text/html")


def _limit_headers(limit: dict[str, float]) -> dict[str, str]:
    """OpenAI's request rate-limit headers (``reset`` as ``1.25s``)."""
    return {"x-ratelimit-limit-requests": str(int(limit["limit"])),
            "x-ratelimit-remaining-requests": str(int(limit["remaining"])),
            "x-ratelimit-reset-requests": f"{limit['reset']:.3f}s"}


def _max_tokens(body: dict[str, Any]) -> int | None:
    """The request's completion limit (``max_completion_tokens`` or ``max_tokens``), if any."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _stream_events(ident: str, model: str, text: str, usage: dict[str, int] | None,
                   finish: str = "stop") -> list[dict[str, Any]]:
    """OpenAI-style chunks: the role, the text in pieces of a few words, the finish reason,
    and (when asked with ``stream_options.include_usage``) a last chunk with the usage."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _pieces(text)]
    events.append(chunk({}, finish))
    if usage is not None:
        events.append({"id": ident, "object": "chat.completion.chunk", "created": created,
                       "model": model, "choices": [], "usage": usage})
    return events


def _pieces(text: str, words: int = 3) -> list[str]:
    """``text`` split after every few whitespace-separated words (joined back, it is ``text``)."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    return ["".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]


def sse_bytes(event: dict[str, Any] | None) -> bytes:
    """One server-sent event; None is the final ``[DONE]``."""
    data = "[DONE]" if event is None else json.dumps(event, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
