"""A kernel-side record of recent calls, for ``%dspex_history`` (like ``dspy.inspect_history``).

Calls run in worker processes, so the kernel never sees the LM's messages. Each record keeps
what the kernel does know (program, inputs, outputs, ``CallInfo``, error) and rebuilds the
messages on demand with the same DSPy adapter: for Predict and ChainOfThought that is exactly
what the LM was sent (no demos); ReAct's per-step prompts are not rebuilt.

    >>> from dspex_lab import history
    >>> rec = history.record(program, {"question": "2 + 2?"}, prediction)
    >>> history.recent(5)[-1] is rec
    True
    >>> rec.messages()[-1]["content"]            # the user message DSPy sent  # doctest: +SKIP
    '[[ ## question ## ]]\\n2 + 2?\\n\\nRespond with the corresponding output fields, ...'
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallRecord", "clear", "recent", "record", "record_run"]

MAX_RECORDS = 200

_LOCK = threading.Lock()
_RECORDS: deque[CallRecord] = deque(maxlen=MAX_RECORDS)


@dataclass(frozen=True)
class CallRecord:
    """One call (``kind="call"``) or one DataFrame run (``kind="run"``) made in this kernel."""

    kind: str
    program: Any
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    info: Any = None                       # calls.CallInfo for calls
    usage: dict[str, Any] = field(default_factory=dict)  # df.attrs["usage"] for runs
    error: str | None = None
    adapter: str | None = None
    ts: float = field(default_factory=time.time)

    @property
    def signature_text(self) -> str:
        sig = getattr(self.program, "signature", None)
        return str(sig) if sig is not None else repr(self.program)

    @property
    def module_kind(self) -> str:
        return str(getattr(self.program, "kind", "module"))

    @property
    def rebuildable(self) -> bool:
        """True when the prompt can be rebuilt exactly: one Predict/ChainOfThought call."""
        return self.kind == "call" and self.module_kind in ("predict", "cot", "chain_of_thought")

    def messages(self) -> list[dict[str, Any]] | None:
        """The chat messages DSPy's adapter builds for these inputs; None when they cannot be
        rebuilt (a run, a ReAct or multi-step program, a module without one predictor)."""
        if not self.rebuildable:
            return None
        try:
            return _adapter(self.adapter).format(self._dspy_signature(), demos=[],
                                                 inputs=dict(self.inputs))
        except Exception:  # a display helper must not fail
            return None

    def response(self) -> str | None:
        """The assistant message that yields these outputs, in the adapter's format."""
        if not self.rebuildable or self.error:
            return None
        try:
            return _adapter(self.adapter).format_assistant_message_content(
                self._dspy_signature(), dict(self.outputs))
        except Exception:
            return None

    def _dspy_signature(self) -> Any:
        from dspex_lab.runtime import build_module

        module = build_module(self.program)
        predictors = list(module.predictors())
        if len(predictors) != 1:
            raise ValueError("not a single-predictor module")
        return predictors[0].signature


def _adapter(name: str | None) -> Any:
    import dspy

    from dspex_lab.runtime import make_adapter

    return make_adapter(name) or dspy.ChatAdapter()


def record(program: Any, inputs: dict[str, Any], prediction: Any = None, *,
           error: str | None = None, adapter: str | None = None) -> CallRecord:
    """Remember one call: its prediction (outputs and ``_dspex`` info) or its error."""
    outputs = dict(prediction.items()) if prediction is not None else {}
    rec = CallRecord("call", program, dict(inputs), outputs,
                     getattr(prediction, "_dspex", None), error=error, adapter=adapter)
    return _add(rec)


def record_run(program: Any, frame: Any = None, *, error: str | None = None,
               adapter: str | None = None) -> CallRecord:
    """Remember one DataFrame run (its usage totals, or its error)."""
    usage = dict(getattr(frame, "attrs", {}).get("usage", {})) if frame is not None else {}
    return _add(CallRecord("run", program, usage=usage, error=error, adapter=adapter))


def _add(rec: CallRecord) -> CallRecord:
    with _LOCK:
        _RECORDS.append(rec)
    return rec


def recent(n: int | None = None) -> list[CallRecord]:
    """The last ``n`` records (all kept ones for None), oldest first."""
    with _LOCK:
        items = list(_RECORDS)
    return items if n is None else items[-n:] if n > 0 else []


def clear() -> None:
    """Forget every record."""
    with _LOCK:
        _RECORDS.clear()
