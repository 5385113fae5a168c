"""``%dspex_history``: the last calls with their prompts and responses, newest last.

    >>> HistoryView(dspex_lab.history.recent(3))
    [1] predict  question: str -> answer: str  (pool · 75.0 ms · 149 + 12 tokens)
        question: What is the capital of France?
        -> answer: Paris
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display._html import box, esc, meta_line, table, value_text
from dspex_lab.display.prediction import call_caption
from dspex_lab.display.run import run_summary_parts

__all__ = ["HistoryView"]

_PRE = ('white-space:pre-wrap;margin:2px 0;padding:4px;'
        'background:var(--jp-layout-color2,#f5f5f5);font-size:var(--jp-code-font-size,0.85em)')


def _caption(rec: Any) -> list[str]:
    if rec.kind == "run":
        return ["run", *run_summary_parts(rec.usage)]
    return call_caption(rec.info)


def _messages_html(rec: Any) -> str:
    messages = rec.messages()
    if not messages:
        return ""
    parts = [f"<div><b>{esc(m.get('role', '?'))}</b><pre style=\"{_PRE}\">"
             f"{esc(value_text(m.get('content', ''), 20_000))}</pre></div>" for m in messages]
    response = rec.response()
    if response:
        parts.append(f'<div><b>response</b><pre style="{_PRE}">{esc(response)}</pre></div>')
    return ("<details><summary>prompt and response (rebuilt with the adapter)</summary>"
            + "".join(parts) + "</details>")


class HistoryView:
    """A list of ``dspex_lab.history.CallRecord``s, newest last."""

    def __init__(self, records: list[Any]) -> None:
        self.records = list(records)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        if not self.records:
            return box("history", "<i>No calls yet in this kernel.</i>")
        items = []
        for i, rec in enumerate(self.records, 1):
            head = (f"<div><b>[{i}]</b> {esc(rec.module_kind)} "
                    f"<code>{esc(rec.signature_text)}</code></div>")
            rows = [(k, v) for k, v in rec.inputs.items()]
            rows += [(f"→ {k}", v) for k, v in rec.outputs.items()]
            body = table(rows) if rows else ""
            if rec.error:
                body += (f'<div style="color:var(--jp-error-color1,#c00)">'
                         f"{esc(rec.error)}</div>")
            items.append(f'<div style="margin-bottom:6px">{head}{body}'
                         f"{meta_line(_caption(rec))}{_messages_html(rec)}</div>")
        return box("history", "".join(items), title=f"Last {len(self.records)} call(s)")

    def __repr__(self) -> str:
        if not self.records:
            return "No calls yet in this kernel."
        lines = []
        for i, rec in enumerate(self.records, 1):
            caption = " · ".join(p for p in _caption(rec) if p)
            lines.append(f"[{i}] {rec.module_kind}  {rec.signature_text}"
                         + (f"  ({caption})" if caption else ""))
            lines += [f"    {k}: {value_text(v, 200)}" for k, v in rec.inputs.items()]
            lines += [f"    -> {k}: {value_text(v, 200)}" for k, v in rec.outputs.items()]
            if rec.error:
                lines.append(f"    error: {rec.error}")
        return "\n".join(lines)
