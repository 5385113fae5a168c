"""The optional fast transport: DSPy formats and parses, a pooled HTTP client posts.

``run(..., transport="fast")`` sends the chat completions of ``Predict``/``ChainOfThought``
programs on OpenAI-compatible endpoints (``openai/<model>`` with an ``api_base``) straight
through one pooled ``aiohttp`` session per worker, instead of through ``dspy.LM``. Everything
that decides the answer is still DSPy's own code: the predictor's ``_forward_preprocess``
(inputs, demos, config), the ``ChatAdapter``'s ``format`` (the exact messages DSPy would send)
and its ``_call_postprocess``/``parse``, and the predictor's ``_forward_postprocess`` (the
``Prediction``). What it skips is the per-call machinery of ``dspy.LM`` (engine selection,
request canonicalisation, pricing metadata lookups, history), which costs about 3-6 ms of CPU
per call and caps a process at roughly 200 calls/s.

What differs: the request body is ``{"model", "messages", **generation settings}`` as the LM
holds them (no provider-specific rewriting), DSPy's LM history and callbacks are not fed, and
usage comes from the response's ``usage``. A reply the ChatAdapter cannot parse is redone on
the normal path (where DSPy falls back to its JSONAdapter). Anything not eligible (other
modules, adapters or providers, callbacks, ``n > 1``) uses the normal path; ``eligible()``
says why. The default transport is always the real ``dspy.LM``.

A failed reply raises the DSPy error the default transport raises for it, worded the same
(an error envelope's message and code, a body that is not JSON or not UTF-8, a body cut
short, an HTML error page, a dropped connection), so the ``error`` column and retries do not
depend on the transport (``tests/test_transport_errors.py`` runs both on the same replies).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from dspex_lab.batch import recording as _replay
from dspex_lab.batch.ratelimits import RateLimitHint, parse_reset

__all__ = ["FastTransport", "NotEligible", "fast_transport"]

_CLIENT_KEYS = frozenset({"api_key", "api_base", "base_url", "headers", "extra_headers",
                          "timeout", "api_version", "organization", "project", "extra_query",
                          "custom_llm_provider", "num_retries", "rollout_id", "prompt_cache",
                          "cache"})
_SESSIONS: dict[tuple[int, str], Any] = {}


class NotEligible(Exception):
    """This row (or program) must take the normal DSPy path; the message says why."""


@dataclass(frozen=True)
class _Endpoint:
    url: str
    model: str
    headers: dict[str, str]
    settings: dict[str, Any]
    timeout: float | None


def _endpoint(lm: Any, timeout: float | None) -> _Endpoint:
    import dspy

    if type(lm) is not dspy.LM:
        raise NotEligible(f"the LM is a {type(lm).__name__}, not a plain dspy.LM")
    if lm.model_type != "chat" or not lm.model.startswith("openai/"):
        raise NotEligible(f"model {lm.model!r} is not an openai/ chat model")
    from dspex_lab.trace import is_observer

    if [c for c in lm.callbacks if not is_observer(c)] or not isinstance(
            getattr(lm, "_engine_spec", "auto"), str):
        raise NotEligible("the LM has callbacks or a custom engine")
    kwargs = dict(lm.kwargs)
    base = kwargs.get("api_base") or kwargs.get("base_url")
    if not base:
        raise NotEligible("the LM has no api_base (only explicit OpenAI-compatible endpoints)")
    if (kwargs.get("n") or 1) > 1 or kwargs.get("headers") or kwargs.get("extra_headers"):
        raise NotEligible("n > 1 or custom headers")
    headers = {"Content-Type": "application/json"}
    if kwargs.get("api_key"):
        headers["Authorization"] = f"Bearer {kwargs['api_key']}"
    settings = {k: v for k, v in kwargs.items() if k not in _CLIENT_KEYS and v is not None}
    return _Endpoint(str(base).rstrip("/") + "/chat/completions", lm.model.split("/", 1)[1],
                     headers, settings, timeout)


def _predictor(module: Any) -> Any:
    import dspy

    if type(module) is dspy.Predict:
        return module
    if type(module) is dspy.ChainOfThought and type(module.predict) is dspy.Predict:
        return module.predict
    raise NotEligible(f"{type(module).__name__} is not a plain Predict or ChainOfThought")


def _adapter(adapter: Any, predictor: Any, lm: Any) -> Any:
    import dspy
    from dspy.adapters.decision import resolve_adapter

    adapter = adapter or dspy.ChatAdapter()
    if type(adapter) is not dspy.ChatAdapter or adapter.use_native_function_calling:
        raise NotEligible("the adapter is not a plain ChatAdapter")
    if adapter.callbacks or dspy.settings.callbacks:
        raise NotEligible("callbacks are configured")
    sig = predictor.signature
    if resolve_adapter(lm, adapter, sig, predictor.fields, sig) is not adapter:
        raise NotEligible("the signature has decision fields")
    native = tuple(adapter.native_response_types)
    if any(f.annotation in native for f in sig.output_fields.values()):
        raise NotEligible("an output uses a native LM feature (e.g. citations)")
    return adapter


class FastTransport:
    """Runs one eligible program on one LM; build with ``fast_transport`` (checks eligibility)."""

    def __init__(self, module: Any, lm: Any, adapter: Any, timeout: float | None) -> None:
        self.predictor = _predictor(module)
        self.endpoint = _endpoint(lm, timeout)
        self.lm = lm
        self.adapter = _adapter(adapter, self.predictor, lm)

    async def acall(self, inputs: dict[str, Any]) -> tuple[Any, int, int, Any]:
        """One row: ``(prediction, prompt_tokens, completion_tokens, rate-limit hint or
        None)``; raises DSPy's LM errors (so retries classify them; a 429 keeps its headers)
        or ``NotEligible`` when the normal path must redo it."""
        pred = self.predictor
        lm, config, signature, demos, kwargs = pred._forward_preprocess(lm=self.lm, **inputs)
        if any(k in config for k in ("tools", "tool_choice", "n", "prediction")):
            raise NotEligible("the call has tools, n or predicted outputs")
        messages = self.adapter.format(signature, demos, kwargs)
        settings = {**self.endpoint.settings,
                    **{k: v for k, v in config.items() if k not in _CLIENT_KEYS}}
        text, prompt_tokens, completion_tokens, hint = await self._complete(messages, settings)
        try:
            completions = self.adapter._call_postprocess(signature, signature, [text], lm, config)
        except Exception as exc:  # DSPy would retry with its JSONAdapter: let it
            raise NotEligible(f"the ChatAdapter could not parse the reply ({exc})") from exc
        return pred._forward_postprocess(completions, signature, **kwargs), prompt_tokens, \
            completion_tokens, hint

    async def _complete(self, messages: list[dict[str, Any]], settings: dict[str, Any]
                        ) -> tuple[str, int, int, Any]:
        config = _replay.current()
        key = None
        if config is not None:
            key = _replay.request_key(self.lm.model, messages, settings)
            if config.mode == "replay":
                entry = _replay.lookup(config, key, self.lm.model, messages)
                if entry is not None:
                    usage = entry.get("usage") or {}
                    return (_replay.entry_text(entry), int(usage.get("prompt_tokens") or 0),
                            int(usage.get("completion_tokens") or 0), None)
        body = {"model": self.endpoint.model, "messages": messages, **settings}
        data, hint = await _post(self.endpoint, body)
        try:
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            usage = data.get("usage") or {}
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(
                usage.get("completion_tokens") or 0)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise NotEligible(f"the reply is not a chat completion ({exc})") from exc
        if message.get("tool_calls"):
            raise NotEligible("the reply has tool calls")
        if config is not None and config.mode == "record" and key is not None:
            _replay.store(config).append(key, _replay.text_entry(
                data.get("model") or self.endpoint.model, text, prompt, completion))
        return text, prompt, completion, hint


async def _post(endpoint: _Endpoint, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """POST one chat completion: ``(reply, rate-limit hint or None)``, or DSPy's LM error,
    worded as DSPy's own engine words the same failure (``_not_json``, ``_http_error``)."""
    import aiohttp
    from dspy.utils import exceptions as dx

    session = _session(endpoint.url)
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout) if endpoint.timeout else None
    model = f"openai/{endpoint.model}"
    try:
        async with session.post(endpoint.url, data=json.dumps(body), headers=endpoint.headers,
                                timeout=timeout) as resp:
            status, headers = resp.status, resp.headers
            raw = await _read_body(resp, model)
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise dx.LMTimeoutError(f"No reply within {endpoint.timeout} s.", model=model,
                                provider="openai") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise dx.LMTransportError("server closed connection before sending response",
                                  model=model, provider="openai") from exc
    except aiohttp.ClientConnectorError as exc:
        raise dx.LMTransportError(f"failed to connect to {exc.host}:{exc.port}: {exc.os_error}",
                                  model=model, provider="openai") from exc
    except aiohttp.ClientError as exc:
        raise dx.LMTransportError(f"{type(exc).__name__}: {exc}", model=model,
                                  provider="openai") from exc
    hint = RateLimitHint.from_headers(headers)
    if status != 200:
        error = _http_error(status, raw, model, parse_reset(headers.get("Retry-After")))
        error._dspex_hint = hint  # type: ignore[attr-defined]
        raise error
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise dx.LMProviderError(_not_json(status, headers.get("Content-Type"), raw, exc),
                                 model=model, provider="openai", status=status) from exc
    return data, hint


async def _read_body(resp: Any, model: str) -> bytes:
    """The whole body; a connection closed before ``Content-Length`` bytes is DSPy's
    ``LMTransportError`` with the count outstanding."""
    import aiohttp
    from dspy.utils import exceptions as dx

    chunks: list[bytes] = []
    try:
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
    except aiohttp.ClientPayloadError as exc:
        got, expected = sum(map(len, chunks)), resp.content_length
        if expected is None or got >= expected:
            raise
        raise dx.LMTransportError(f"connection closed with {expected - got} body bytes "
                                  "outstanding", model=model, provider="openai") from exc
    return b"".join(chunks)


def _not_json(status: int, content_type: str | None, raw: bytes, exc: Exception) -> str:
    """DSPy's (lm15's) message for a reply whose body is not JSON."""
    excerpt = raw[:200].decode("utf-8", errors="replace") + ("…" if len(raw) > 200 else "")
    return (f"the reply (HTTP {status}, {content_type or 'no content-type'}, {len(raw)} bytes) "
            f"is not JSON: {exc}. Body starts: {excerpt!r}. A gateway or proxy in front of the "
            "provider is the usual cause; the request may or may not have been served.")


def _http_error(status: int, raw: bytes, model: str, retry_after: float | None) -> Exception:
    """An error reply as DSPy's engine raises it for an OpenAI-compatible provider: the
    error envelope's message (and code), classed by code, then by HTTP status."""
    from dspy.utils import exceptions as dx

    text = raw.decode("utf-8", errors="replace")
    message, code, kind = text.strip()[:500] or f"HTTP {status}", "", ""
    try:
        data = json.loads(text)
        envelope = data.get("error", {}) if isinstance(data, dict) else {}
        if isinstance(envelope, dict):
            message = str(envelope.get("message", ""))
            code, kind = str(envelope.get("code") or ""), str(envelope.get("type") or "")
        else:
            message = str(envelope)
    except ValueError:
        pass
    cls = _error_class(status, code, kind)
    if code and code not in message and cls not in (dx.ContextWindowExceededError,
                                                     dx.LMBillingError, dx.LMAuthError,
                                                     dx.LMRateLimitError):
        message = f"{message} ({code})"
    return cls(message, model=model, provider="openai", status=status,
               provider_code=code or kind or None, retry_after=retry_after)


def _error_class(status: int, code: str, kind: str) -> type[Exception]:
    from dspy.utils import exceptions as dx

    if code == "context_length_exceeded":
        return dx.ContextWindowExceededError
    if code == "insufficient_quota" or kind == "insufficient_quota":
        return dx.LMBillingError
    if code == "invalid_api_key" or kind == "authentication_error":
        return dx.LMAuthError
    if code == "rate_limit_exceeded" or kind == "rate_limit_error":
        return dx.LMRateLimitError
    for statuses, cls in (((401, 403), dx.LMAuthError), ((402,), dx.LMBillingError),
                          ((408, 504), dx.LMTimeoutError), ((429,), dx.LMRateLimitError),
                          ((400, 404, 409, 413, 422), dx.LMInvalidRequestError)):
        if status in statuses:
            return cls
    return dx.LMServerError if 500 <= status <= 599 else dx.LMProviderError


def _session(url: str) -> Any:
    """One keep-alive session per event loop (and endpoint host)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    key = (id(loop), url.split("/", 3)[2])
    session = _SESSIONS.get(key)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = _SESSIONS[key] = aiohttp.ClientSession(connector=connector)
    return session


async def close_sessions() -> None:
    """Close this event loop's HTTP sessions (at process exit)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _SESSIONS if k[0] == loop_id]:
        await _SESSIONS.pop(key).close()


_TRANSPORTS: dict[tuple[Any, ...], tuple[Any, Any, Any, Any]] = {}


def fast_transport(module: Any, lm: Any, adapter: Any, timeout: float | None
                   ) -> FastTransport | str:
    """A (per-process cached) ``FastTransport``, or the reason the program cannot use one."""
    key = (id(module), id(lm), id(adapter), timeout)
    entry = _TRANSPORTS.get(key)
    # the entry holds its objects, so an id reused by a new object never matches an old entry
    if entry is None or entry[0] is not module or entry[1] is not lm or entry[2] is not adapter:
        try:
            found: FastTransport | str = FastTransport(module, lm, adapter, timeout)
        except NotEligible as exc:
            found = str(exc)
        if len(_TRANSPORTS) > 64:
            _TRANSPORTS.clear()
        entry = _TRANSPORTS[key] = (module, lm, adapter, found)
    return entry[3]
