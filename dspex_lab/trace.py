"""Row-level traces of batch runs: each row's LM calls (messages, responses), its attempts
with their errors and timing, offline and with no tracking server.

Where they come from: in the worker, a DSPy callback on the run's ``dspy.LM`` records every
call of the row being run (a ``ContextVar`` per row task) and ``traced_row`` times each
attempt. Which rows keep theirs, so memory stays bounded: failed rows always, every row with
``run(..., trace=True)``; messages are cut to ``MAX_TEXT`` characters, ``MAX_CALLS`` calls an
attempt. The worker sends them in the chunk's Arrow schema metadata (no result column); the
kernel keeps them per run (the ``MAX_RUNS`` last runs, at most ``MAX_ROWS`` rows a run).

    >>> res = dspex_lab.run("question -> answer", df, trace=True)
    >>> res.dspex.trace(0)           # displayable: HTML in a notebook, text elsewhere
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections import OrderedDict
from typing import Any

from dspex_lab.display._html import box, cost, esc, ms

__all__ = ["MAX_CALLS", "MAX_ROWS", "MAX_RUNS", "MAX_TEXT", "RowTrace", "collect",
           "encode", "lookup", "position", "remember", "traced_call", "traced_row"]

MAX_TEXT = 4000
MAX_CALLS = 20
MAX_RUNS = 16
MAX_ROWS = 5000
METADATA_KEY = b"dspex_traces"

_ROW: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "dspex_row_trace", default=None)


# -- the worker side ---------------------------------------------------------------------------

def _cut(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + f"… ({len(text):,} characters)"
    return text


def _messages(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    messages = inputs.get("messages")
    if not messages and inputs.get("prompt"):
        messages = [{"role": "user", "content": inputs["prompt"]}]
    out = []
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else message
        if not isinstance(content, str):
            content = json.dumps(content, default=str)
        role = message.get("role", "") if isinstance(message, dict) else ""
        out.append({"role": role, "content": _cut(content)})
    return out


def _callback_class() -> type:
    from dspy.utils.callback import BaseCallback

    class TraceCallback(BaseCallback):
        """Records the LM calls of the row being traced (nothing when no row is)."""

        def __init__(self) -> None:
            self.open: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
            self.lock = threading.Lock()

        def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            row = _ROW.get()
            if row is None or len(row["calls"]) >= MAX_CALLS * max(1, len(row["attempts"])):
                return
            call = {"model": str(getattr(instance, "model", "")), "messages": _messages(inputs),
                    "at_ms": (time.perf_counter() - row["t0"]) * 1e3,
                    "attempt": max(1, len(row["attempts"]))}
            row["calls"].append(call)
            with self.lock:
                self.open[call_id] = (row, call)

        def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None
                      ) -> None:
            with self.lock:
                found = self.open.pop(call_id, None)
            if found is None:
                return
            row, call = found
            call["ms"] = (time.perf_counter() - row["t0"]) * 1e3 - call["at_ms"]
            if exception is not None:
                call["error"] = _cut(f"{type(exception).__name__}: {exception}")
            else:
                call["response"] = [_cut(o if isinstance(o, str) else json.dumps(o, default=str))
                                    for o in (outputs or [])][:4]

    return TraceCallback


_CALLBACK: list[Any] = []


def _callback() -> Any:
    if not _CALLBACK:
        _CALLBACK.append(_callback_class()())
    return _CALLBACK[0]


def observe(lm: Any) -> Any:
    """Put the trace callback on ``lm`` (once; it records only while a traced row runs).

    On the LM instance, not in ``dspy.settings.callbacks``: settings callbacks wrap every
    module, adapter and tool call too, which changes what a program sees (a ReAct tool's
    traceback gains a frame, and ReAct puts that text into its next prompt). The fast
    transport ignores this observer (it bypasses ``dspy.LM``, so it records no calls)."""
    callbacks = getattr(lm, "callbacks", None)
    if isinstance(callbacks, list) and not any(is_observer(c) for c in callbacks):
        callbacks.append(_callback())
    return lm


def is_observer(callback: Any) -> bool:
    """True for the trace callback (it observes LM calls and changes nothing)."""
    return type(callback).__name__ == "TraceCallback" and type(callback).__module__ == __name__


def traced_call(call: Any) -> Any:
    """``call`` (the chunk's ``async call(inputs)``) with each attempt timed and recorded."""
    async def attempt(inputs: dict[str, Any]) -> Any:
        row = _ROW.get()
        if row is None:
            return await call(inputs)
        entry: dict[str, Any] = {"at_ms": (time.perf_counter() - row["t0"]) * 1e3}
        row["attempts"].append(entry)
        try:
            return await call(inputs)
        except Exception as exc:
            entry["error"] = _cut(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            raise
        except asyncio.CancelledError:
            entry["error"] = "Cancelled: the attempt was stopped (its deadline, or the run)"
            raise
        finally:
            t0 = row.get("t0")
            if t0 is not None:
                entry["ms"] = (time.perf_counter() - t0) * 1e3 - entry["at_ms"]

    return attempt


async def traced_row(run_row: Any, call: Any, inputs: dict[str, Any], keep_all: bool) -> Any:
    """``await run_row(call, inputs)`` recording the row's trace into ``row.trace`` (kept for
    failed rows, and for every row when ``keep_all``); the ``dspy.LM`` calls are recorded by
    the callback ``observe`` put on the LM (none with the fast transport, which bypasses it)."""
    from dspex_lab.kinds import OK
    from dspex_lab.redaction import redact_text

    record: dict[str, Any] = {"t0": time.perf_counter(), "attempts": [], "calls": []}
    _ROW.set(record)
    row = await run_row(call, inputs)
    if keep_all or row.status != OK:
        del record["t0"]
        row.trace = json.loads(redact_text(json.dumps(record, default=str)))
    return row


def encode(traces: dict[int, Any]) -> bytes:
    """The chunk's kept traces (position in the chunk -> trace) for the schema metadata."""
    return json.dumps({str(k): v for k, v in traces.items()}, default=str).encode()


# -- the kernel side ---------------------------------------------------------------------------

_RUNS: OrderedDict[str, dict[int, bytes]] = OrderedDict()
_INDEX: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.Lock()


def collect(run_id: str, rows: Any, metadata: dict[bytes, bytes] | None) -> None:
    """Keep the traces a chunk's table carries (``rows``: the chunk's row positions)."""
    raw = (metadata or {}).get(METADATA_KEY)
    if not raw:
        return
    traces = json.loads(raw)
    with _LOCK:
        kept = _RUNS.setdefault(run_id, {})
        _RUNS.move_to_end(run_id)
        while len(_RUNS) > MAX_RUNS:
            _RUNS.popitem(last=False)
        for position, trace in traces.items():
            if len(kept) >= MAX_ROWS:
                break
            kept[int(rows[int(position)])] = json.dumps(trace).encode()


def remember(run_id: str, index: Any) -> None:
    """Keep the run's frame index (shared, not copied): a filtered frame's labels map back to
    the run's row positions."""
    with _LOCK:
        _INDEX[run_id] = index
        _INDEX.move_to_end(run_id)
        while len(_INDEX) > MAX_RUNS:
            _INDEX.popitem(last=False)


def position(run_id: str | None, label: Any) -> int | None:
    """The run's row position of the row labelled ``label`` (None: unknown run or label)."""
    with _LOCK:
        index = _INDEX.get(run_id or "")
    try:
        found = index.get_loc(label) if index is not None else None
    except (KeyError, TypeError):
        return None
    return found if isinstance(found, int) else None


def lookup(run_id: str | None, position: int) -> dict[str, Any] | None:
    """The kept trace of row ``position`` of run ``run_id`` (None: none was kept)."""
    with _LOCK:
        raw = _RUNS.get(run_id or "", {}).get(position)
    return json.loads(raw) if raw else None


class RowTrace:
    """One row's trace: its result columns, attempts and LM calls (HTML + text)."""

    def __init__(self, label: Any, row: dict[str, Any], trace: dict[str, Any] | None) -> None:
        self.label, self.row, self.trace = label, row, trace

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """Each LM attempt: ``at_ms`` (from the row's start), ``ms``, ``error`` if it failed."""
        return list((self.trace or {}).get("attempts", []))

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Each ``dspy.LM`` call: ``attempt``, ``model``, ``messages``, ``response`` or
        ``error``, ``at_ms``, ``ms``."""
        return list((self.trace or {}).get("calls", []))

    def _summary(self) -> list[tuple[str, Any]]:
        r = self.row
        items = [("status", r.get("status")), ("attempts", r.get("attempts")),
                 ("latency", ms(r.get("latency_ms") or 0.0)),
                 ("tokens", f"{int(r.get('prompt_tokens') or 0):,} prompt + "
                            f"{int(r.get('completion_tokens') or 0):,} completion"),
                 ("cost", cost(r.get("cost") or 0.0))]
        if r.get("error"):
            items.append(("error", r["error"]))
        return items

    def _missing(self) -> str:
        if self.row.get("status") in ("invalid", "not_run", "cached"):
            return f"no LM call was made for this row (status {self.row.get('status')})."
        return ("no trace was kept for this row: failed rows are always traced; run with "
                "run(..., trace=True) to keep every row's calls.")

    def __repr__(self) -> str:
        lines = [f"Trace of row {self.label}"]
        lines += [f"  {k}: {v}" for k, v in self._summary()]
        if self.trace is None:
            return "\n".join([*lines, "  " + self._missing()])
        for i, attempt in enumerate(self.attempts, 1):
            outcome = attempt.get("error") or "ok"
            lines.append(f"attempt {i} at +{attempt.get('at_ms', 0):.0f} ms, "
                         f"{attempt.get('ms', 0):.0f} ms: {outcome}")
            for call in (c for c in self.calls if c.get("attempt") == i):
                lines.append(f"  call {call.get('model', '')} ({call.get('ms', 0):.0f} ms)")
                for m in call.get("messages", []):
                    lines.append(f"    [{m['role']}] {m['content']}")
                for out in call.get("response", []):
                    lines.append(f"    => {out}")
                if call.get("error"):
                    lines.append(f"    !! {call['error']}")
        if not self.calls:
            lines.append("  (the LM calls were not recorded: the fast transport or a module "
                         "that does not call dspy.LM)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<tr><th style='text-align:left;padding:1px 8px'>{esc(k)}</th>"
                       f"<td style='text-align:left;white-space:pre-wrap;padding:1px 8px'>"
                       f"{esc(v)}</td></tr>"
                       for k, v in self._summary())
        parts = [f"<table class='dspex-trace-summary'>{head}</table>"]
        if self.trace is None:
            parts.append(f"<p><i>{esc(self._missing())}</i></p>")
        for i, attempt in enumerate(self.attempts, 1):
            failed = attempt.get("error")
            colour = "var(--jp-error-color1,#d32f2f)" if failed else \
                "var(--jp-success-color1,#388e3c)"
            opened = "open" if failed or i == len(self.attempts) else ""
            parts.append(f"<details class='dspex-trace-attempt' {opened}>"
                         f"<summary><b style='color:{colour}'>attempt {i}</b> at "
                         f"+{attempt.get('at_ms', 0):.0f} ms, {attempt.get('ms', 0):.0f} ms"
                         f"{': ' + esc(failed) if failed else ' ok'}</summary>")
            for call in (c for c in self.calls if c.get("attempt") == i):
                parts.append(_call_html(call))
            parts.append("</details>")
        return box("trace", "".join(parts), title=f"Trace of row {self.label}")


def _call_html(call: dict[str, Any]) -> str:
    pre = ("style='white-space:pre-wrap;margin:2px 0 6px;padding:4px;"
           "background:var(--jp-layout-color2,#f5f5f5);color:var(--jp-ui-font-color1,#222)'")
    body = "".join(f"<div><small>{esc(m['role'])}</small><pre {pre}>{esc(m['content'])}</pre>"
                   "</div>" for m in call.get("messages", []))
    body += "".join(f"<div><small>response</small><pre {pre}>{esc(o)}</pre></div>"
                    for o in call.get("response", []))
    if call.get("error"):
        body += f"<div style='color:var(--jp-error-color1,#d32f2f)'>{esc(call['error'])}</div>"
    return (f"<div class='dspex-trace-call' style='margin-left:1em'>LM call "
            f"<code>{esc(call.get('model', ''))}</code> {call.get('ms', 0):.0f} ms{body}</div>")
