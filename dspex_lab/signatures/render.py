"""Notebook views of a signature: a small table of its fields (HTML and Markdown).

>>> from dspex_lab.signatures import signature
>>> print(to_markdown(signature("q -> a: int 'a number'")))
`q -> a: int 'a number'`
<BLANKLINE>
| field | type | description | kind |
|---|---|---|---|
| `q` | `str` |  | input |
| `a` | `int` | a number | output |
"""

from __future__ import annotations

from html import escape

from dspex_lab.signatures.spec import Signature

__all__ = ["to_html", "to_markdown"]


def to_html(sig: Signature) -> str:
    """An HTML table: one row per field (name, type, description, input/output)."""
    rows = "".join(
        f"<tr><td><code>{escape(f.name)}</code></td><td><code>{escape(str(f.type))}</code></td>"
        f"<td>{escape(f.description or '')}</td><td>{f.kind}</td></tr>"
        for f in sig.fields
    )
    caption = "" if sig.instructions is None else f"<caption>{escape(sig.instructions)}</caption>"
    return (f'<table class="dspex-signature">{caption}<thead><tr><th>field</th><th>type</th>'
            f"<th>description</th><th>kind</th></tr></thead><tbody>{rows}</tbody></table>")


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(sig: Signature) -> str:
    """A Markdown table with the canonical text above it (and the instructions, when set)."""
    head = f"`{_cell(str(sig))}`"
    if sig.instructions is not None:
        head += f"\n\n{_cell(sig.instructions)}"
    rows = "\n".join(
        f"| `{f.name}` | `{_cell(str(f.type))}` | {_cell(f.description or '')} | {f.kind} |"
        for f in sig.fields
    )
    return f"{head}\n\n| field | type | description | kind |\n|---|---|---|---|\n{rows}"
