"""A DSPy callback that turns every LM call into an ``lm.call`` telemetry event.

    >>> install_callback()                 # all LMs, via dspy.settings.callbacks
    >>> install_callback(lm)               # one LM (works from any thread)
    >>> telemetry.events("lm.call")[["model", "latency_ms", "prompt_tokens", "cost", "cached"]]

Each event has ``model``, ``latency_ms`` (wall time of the call), ``prompt_tokens``,
``completion_tokens``, ``cost`` (USD; DSPy's own estimate, else litellm's local cost map, 0.0
for the embedded model), ``error`` (None or ``"Type: message"``) and ``cached`` (DSPy's cache
answered: the history entry has no usage). Tokens and cost come from the history entry DSPy
records for the call (dspy 3.4 records it before ``on_lm_end`` runs). A failing callback logs
and never raises into the LM call.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

from dspy.utils.callback import BaseCallback

from dspex_lab import telemetry

__all__ = ["TelemetryCallback", "get_callback", "install_callback"]

log = logging.getLogger("dspex_lab.lm")

_MAX_PENDING = 10_000
_SCAN = 64


class TelemetryCallback(BaseCallback):
    """Emits ``lm.call`` events. One shared instance (``get_callback()``) is enough; a call
    seen twice (the callback installed globally and on the LM) is reported once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, tuple[float, Any, Any]] = OrderedDict()
        self._claimed: OrderedDict[int, None] = OrderedDict()

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """DSPy hook: note when and with which model a call started."""
        try:
            with self._lock:
                if call_id in self._pending:
                    return
                self._pending[call_id] = (time.perf_counter(), instance, _fingerprint(inputs))
                while len(self._pending) > _MAX_PENDING:
                    self._pending.popitem(last=False)
        except Exception:  # never break the LM call
            log.debug("lm.call telemetry: on_lm_start failed", exc_info=True)

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None
                  ) -> None:
        """DSPy hook: emit the call's ``lm.call`` event (latency, usage, cost, error)."""
        try:
            with self._lock:
                started = self._pending.pop(call_id, None)
            if started is not None:
                self._emit(*started, exception)
        except Exception:  # never break the LM call
            log.debug("lm.call telemetry: on_lm_end failed", exc_info=True)

    def _emit(self, start: float, lm: Any, fingerprint: Any, exception: BaseException | None
              ) -> None:
        latency_ms = (time.perf_counter() - start) * 1e3
        model = str(getattr(lm, "model", "?"))
        entry = None if exception is not None else self._history_entry(lm, fingerprint)
        usage = (entry or {}).get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cached = entry is not None and not usage
        cost = _cost(model, entry, prompt_tokens, completion_tokens)
        error = None if exception is None else telemetry.redact(
            f"{type(exception).__name__}: {exception}")[:500]
        telemetry.emit("lm.call", model=model, latency_ms=latency_ms,
                       prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                       cost=cost, error=error, cached=cached)

    def _history_entry(self, lm: Any, fingerprint: Any) -> dict[str, Any] | None:
        """This call's history entry: the newest unclaimed one with the same messages (or
        simply the newest unclaimed one)."""
        history = list(getattr(lm, "history", None) or [])[-_SCAN:]
        with self._lock:
            fresh = [e for e in reversed(history) if id(e) not in self._claimed]
            entry = next((e for e in fresh if _fingerprint(e) == fingerprint), None)
            if entry is None and fresh:
                entry = fresh[0]
            if entry is not None:
                self._claimed[id(entry)] = None
                while len(self._claimed) > _MAX_PENDING:
                    self._claimed.popitem(last=False)
        return entry


def _fingerprint(data: dict[str, Any]) -> tuple[str, ...]:
    """The texts of a call's messages (or its prompt), comparable between the callback's
    inputs and DSPy's history entry."""
    messages = data.get("messages")
    if messages:
        texts = []
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else getattr(m, "content", m)
            texts.append(content if isinstance(content, str) else repr(content))
        return tuple(texts)
    prompt = data.get("prompt")
    return (prompt,) if isinstance(prompt, str) else ()


def _cost(model: str, entry: dict[str, Any] | None, prompt_tokens: int,
          completion_tokens: int) -> float:
    """DSPy's own estimate when it has one, else ``dspex_lab.usage.cost_of`` (litellm's local
    cost map; the embedded model is priced like a small hosted model)."""
    from dspex_lab.usage import cost_of

    if entry is None:
        return 0.0
    if isinstance(entry.get("cost"), int | float) and "dspex-embedded" not in model:
        return float(entry["cost"])
    return cost_of(model, prompt_tokens, completion_tokens)


_CALLBACK: TelemetryCallback | None = None
_CALLBACK_LOCK = threading.Lock()


def get_callback() -> TelemetryCallback:
    """The process-wide ``TelemetryCallback``."""
    global _CALLBACK
    with _CALLBACK_LOCK:
        if _CALLBACK is None:
            _CALLBACK = TelemetryCallback()
        return _CALLBACK


def install_callback(lm: Any = None) -> TelemetryCallback:
    """Add the telemetry callback to ``lm.callbacks``, or (no ``lm``) to
    ``dspy.settings.callbacks``; idempotent. Returns the callback.

    >>> install_callback() is install_callback()
    True
    """
    callback = get_callback()
    if lm is not None:
        callbacks = getattr(lm, "callbacks", None)
        if callbacks is None:
            lm.callbacks = [callback]
        elif not any(isinstance(c, TelemetryCallback) for c in callbacks):
            callbacks.append(callback)
        return callback
    dspy = sys.modules["dspy"]
    current = list(dspy.settings.get("callbacks") or [])
    if not any(isinstance(c, TelemetryCallback) for c in current):
        try:
            dspy.configure(callbacks=[*current, callback])
        except RuntimeError:  # not DSPy's configuring thread: use a per-context setting
            log.info("dspex_lab: could not add the telemetry callback globally from this "
                     "thread; install it on the LM instead: install_callback(lm).")
    return callback
