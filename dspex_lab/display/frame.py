"""A readable view of a result frame: status colours, the error's cause visible, floats
rounded for display only (the frame keeps full precision), big frames cut to head and tail.

    >>> ResultTable(res)           # or res.dspex.show(); HTML in a notebook, text elsewhere
"""

from __future__ import annotations

import math
from typing import Any

from dspex_lab.display._html import esc

__all__ = ["STATUS_COLOURS", "ResultTable", "cause"]

# translucent fills read on light and dark backgrounds alike
STATUS_COLOURS = {"ok": "rgba(56,142,60,0.22)", "error": "rgba(211,47,47,0.25)",
                  "invalid": "rgba(245,124,0,0.25)", "not_run": "rgba(128,128,128,0.25)",
                  "cached": "rgba(25,118,210,0.22)"}
_CAUSE_CHARS = 160
_CELL = "text-align:left;vertical-align:top;padding:2px 8px;white-space:nowrap"


def cause(error: Any, limit: int = _CAUSE_CHARS) -> str:
    """The first line of an error, cut to ``limit`` characters (the cause, not the context).

    >>> cause("AdapterParseError: Adapter ChatAdapter failed to parse.\\n\\nLM Response: ...")
    'AdapterParseError: Adapter ChatAdapter failed to parse.'
    """
    if error is None or (isinstance(error, float) and math.isnan(error)):
        return ""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(name: str, value: float) -> str:
    if math.isnan(value):
        return ""
    if name == "latency_ms":
        return f"{value:,.1f}"
    if name == "cost":
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _cell(name: str, value: Any, limit: int = 200) -> str:
    """A value as display text (floats rounded, errors cut to their cause)."""
    if name == "error":
        return cause(value, min(limit, _CAUSE_CHARS))
    if isinstance(value, float):
        return _number(name, value)
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class ResultTable:
    """``frame`` as a styled table (``max_rows``: beyond it, the head and tail are shown;
    ``max_chars``: longer text is cut; ``caption``: None for the row counts, "" for none)."""

    def __init__(self, frame: Any, max_rows: int = 60, max_chars: int = 200,
                 caption: str | None = None) -> None:
        self.frame, self.max_rows, self.max_chars = frame, max_rows, max_chars
        self.caption = caption

    def _rows(self) -> tuple[list[tuple[Any, Any]], int]:
        frame, n = self.frame, len(self.frame)
        if n <= self.max_rows:
            return list(frame.iterrows()), 0
        head = self.max_rows * 2 // 3
        tail = self.max_rows - head
        rows = [*frame.iloc[:head].iterrows(), (None, None), *frame.iloc[n - tail:].iterrows()]
        return rows, n - head - tail

    def _caption(self) -> str:
        if self.caption is not None:
            return self.caption
        counts = self.frame["status"].value_counts() if "status" in self.frame else {}
        parts = [f"{len(self.frame):,} rows"] + [f"{int(counts[k]):,} {k}"
                                                 for k in STATUS_COLOURS if k in counts]
        return " · ".join(parts)

    def _repr_html_(self) -> str:
        caption = self._caption()
        columns = [str(c) for c in self.frame.columns]
        head = "".join(f'<th style="{_CELL};font-weight:600">{esc(c)}</th>'
                       for c in ["", *columns])
        rows, hidden = self._rows()
        body = []
        for label, row in rows:
            if row is None:
                body.append(f'<tr><td colspan="{len(columns) + 1}" style="{_CELL}">… '
                            f'{hidden:,} more rows …</td></tr>')
                continue
            cells = [f'<th style="{_CELL}">{esc(label)}</th>']
            for name, value in zip(columns, row.tolist(), strict=True):
                style = _CELL
                if name == "status" and value in STATUS_COLOURS:
                    style += f";background:{STATUS_COLOURS[value]}"
                title = ""
                if name == "error" and isinstance(value, str):
                    style = style.replace("nowrap", "normal") + ";min-width:18em"
                    title = f' title="{esc(value[:2000])}"'
                cells.append(f'<td class="dspex-col-{esc(name)}" style="{style}"{title}>'
                             f"{esc(_cell(name, value, self.max_chars))}</td>")
            body.append("<tr>" + "\n".join(cells) + "</tr>\n")  # text reads "q a ..."
        top = (f'<div style="font-weight:600;margin-bottom:2px">{esc(caption)}</div>'
               if caption else "")
        return ('<div class="dspex-result" style="overflow-x:auto;'
                'font-family:var(--jp-ui-font-family,inherit);'
                f'color:var(--jp-ui-font-color1,inherit)">{top}'
                f'<table class="dspex-result-table"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')

    def __repr__(self) -> str:
        shown = self.frame.copy(deep=False)
        for name in shown.columns:
            if name == "error" or shown[name].dtype.kind == "f":
                shown[name] = [_cell(str(name), v) for v in shown[name].tolist()]
        with _pd_options(self.max_rows):
            return f"{self._caption()}\n{shown!r}"


def _pd_options(max_rows: int) -> Any:
    import pandas as pd

    return pd.option_context("display.max_rows", max_rows, "display.max_colwidth", 160,
                             "display.max_columns", None,
                             "display.width", 200)
