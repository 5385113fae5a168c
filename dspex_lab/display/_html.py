"""Small HTML building blocks shared by the reprs: escaped, compact, themed with JupyterLab's
CSS variables (with fallbacks, so classic Notebook, VS Code and nbviewer look right too).

Volatile figures are always written the same way, so ``notebooks/sanitize.cfg`` can mask them:
durations as ``<number> ms`` / ``<number> s``, costs as ``$<number>``.

    >>> table([("answer", "Paris")])[:40]
    '<table class="dspex-table" style="margin:'
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["box", "cost", "esc", "meta_line", "ms", "table", "value_html", "value_text"]

MAX_CHARS = 2000
_MUTED = "color:var(--jp-ui-font-color2,#666);font-size:var(--jp-ui-font-size0,0.85em)"
_CELL = "text-align:left;vertical-align:top;padding:1px 8px"
_HEAD = _CELL + ";font-weight:600"


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML."""
    return html.escape(str(value), quote=True)


def value_text(value: Any, limit: int = MAX_CHARS) -> str:
    """A value as plain text: strings as they are, anything else as its repr; long ones cut."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def value_html(value: Any) -> str:
    """A value for a table cell: text keeps its line breaks; other values are shown as code."""
    text = esc(value_text(value))
    if isinstance(value, str):
        return f'<span style="white-space:pre-wrap">{text}</span>'
    return f'<code style="white-space:pre-wrap">{text}</code>'


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None,
          raw: bool = False) -> str:
    """An HTML table: the first cell of each row is its label (bold), unless a ``header`` is
    given; ``raw=True`` inserts cells as HTML (already escaped)."""
    out = ['<table class="dspex-table" style="margin:2px 0">']
    if header:
        out.append("<tr>" + "".join(f'<th style="{_HEAD}">{esc(h)}</th>' for h in header)
                   + "</tr>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            body = str(cell) if raw else value_html(cell) if i else esc(cell)
            tag, style = ("th", _HEAD) if i == 0 and not header else ("td", _CELL)
            cells.append(f'<{tag} style="{style}">{body}</{tag}>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def meta_line(parts: Iterable[str]) -> str:
    """A muted one-line caption: ``predict · pool · 12.3 ms``."""
    text = " · ".join(esc(p) for p in parts if p)
    return f'<div class="dspex-meta" style="{_MUTED}">{text}</div>' if text else ""


def box(kind: str, body: str, title: str | None = None) -> str:
    """The outer block of a repr; ``kind`` names its CSS class (``dspex-<kind>``)."""
    head = (f'<div style="font-weight:600;margin-bottom:2px">{esc(title)}</div>'
            if title else "")
    return (f'<div class="dspex-{kind}" style="font-family:var(--jp-ui-font-family,inherit);'
            f'color:var(--jp-ui-font-color1,inherit)">{head}{body}</div>')


def ms(value: float | None) -> str:
    """A duration in milliseconds: ``'12.3 ms'`` (``'1.25 s'`` from one second up)."""
    if value is None:
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def cost(value: float | None) -> str:
    """A cost in USD: ``'$0.0012'`` (``'<$0.0001'`` below that); empty for zero or unknown."""
    if not value:
        return ""
    return f"${value:.4f}" if value >= 0.0001 else "<$0.0001"
