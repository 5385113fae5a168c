"""A griffe extension: dspex_lab's reST-flavoured docstrings as Markdown.

The docstrings follow the models in STYLE.md (dspy, httpx): ``double backticks`` (already
Markdown code), ``>>>`` doctest lines, ``text::`` literal blocks and reST simple tables. Markdown
reads a bare ``>>>`` as a block quote and ``::`` literally, so this extension rewrites, in every
docstring before mkdocstrings renders it:

- a run of ``>>>`` / ``...`` lines (and the output lines after them) -> a fenced ``pycon`` block;
- ``text::`` followed by an indented block -> ``text:`` and a fenced ``text`` block;
- a reST simple table (``=====  ====`` borders) -> a Markdown table (a fence if it is not
  one it can read);
- the first paragraph -> one line (mkdocstrings' summary tables show a docstring's first line).

Loaded by mkdocstrings (``mkdocs.yml``: ``handlers.python.options.extensions``).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from griffe import Extension

_BORDER = re.compile(r"^\s*=+( +=+)+\s*$")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fence_indent(out: list[str], block_indent: int) -> int:
    """The indent a fence needs: the content column of the list item the block belongs to,
    else 0 (an indented fence at top level would be read as an indented code block)."""
    for prev in reversed(out):
        if not prev.strip() or _indent(prev) >= block_indent:
            continue
        item = _LIST_ITEM.match(prev)
        if item and item.end() <= block_indent:
            return item.end()
        if _indent(prev) == 0:
            return 0
    return 0


def _fence(out: list[str], block: list[str], lang: str) -> None:
    while block and not block[-1].strip():
        block.pop()
    base = min(_indent(line) for line in block if line.strip())
    pad = " " * _fence_indent(out, base)
    if out and out[-1].strip():
        out.append("")
    out.append(f"{pad}```{lang}")
    out.extend(pad + line[base:] if line.strip() else "" for line in block)
    out.append(f"{pad}```")
    out.append("")


def _doctest_end(lines: list[str], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return end


def _literal_end(lines: list[str], start: int, indent: int) -> int:
    """End of the indented block after a ``::`` line at ``indent`` (blank lines included;
    a doctest that follows after a blank line is not part of it)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        if lines[end].strip().startswith(">>>") and not lines[end - 1].strip():
            break  # a doctest after the literal block gets its own fence
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _table_end(lines: list[str], start: int) -> int:
    """End of a reST simple table: its third border line (top, under the header, bottom)."""
    borders, end = 0, start
    while end < len(lines):
        if _BORDER.match(lines[end]):
            borders += 1
            if borders == 3:
                return end + 1
        end += 1
    return len(lines)


def _simple_table(lines: list[str]) -> list[str] | None:
    """A reST simple table (top border, header, border, rows, bottom border) as a Markdown
    table; a row whose first cell is empty continues the row above. None if it is not one."""
    borders = [k for k, line in enumerate(lines) if _BORDER.match(line)]
    if len(borders) != 3 or borders[0] != 0 or borders[2] != len(lines) - 1:
        return None
    base = _indent(lines[0])
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[0])]

    def cells(line: str) -> list[str]:
        line = line.ljust(spans[-1][1])
        starts = [start for start, _ in spans] + [len(line) + 1]
        return [line[a:b].strip() for a, b in itertools.pairwise(starts)]

    header = [" ".join(parts) for parts in zip(*(cells(line) for line in
                                                  lines[1:borders[1]] if line.strip()),
                                               strict=True)]
    rows: list[list[str]] = []
    for line in lines[borders[1] + 1:borders[2]]:
        if not line.strip():
            continue
        if _indent(line) < base:
            return None
        row = cells(line)
        if rows and not row[0]:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row, strict=True)]
        else:
            rows.append(row)
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_escape_pipes(c) for c in row) + " |" for row in rows]
    return out


def _escape_pipes(cell: str) -> str:
    """Escape ``|`` outside code spans (Markdown tables keep pipes inside code spans)."""
    parts = re.split(r"(``.*?``|`[^`]*`)", cell)
    return "".join(p if k % 2 else p.replace("|", "\\|") for k, p in enumerate(parts))


def _join_first_paragraph(lines: list[str]) -> list[str]:
    """The first paragraph on one line, unless it is code, a list or a doctest."""
    end = 0
    while end < len(lines) and lines[end].strip():
        end += 1
    head = lines[:end]
    if len(head) < 2 or any(line.startswith((" ", ">>>", "-", "*", "`", "=")) for line in head):
        return lines
    if any(line.rstrip().endswith("::") for line in head):
        return lines
    return [" ".join(line.strip() for line in head), *lines[end:]]


def to_markdown(text: str) -> str:
    """Rewrite doctest lines, ``::`` literal blocks and simple tables as fenced blocks
    (text already inside a fence is left alone)."""
    lines = _join_first_paragraph(text.splitlines())
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or stripped.startswith("```"):
            out.append(line)
            i += 1
            continue
        if stripped.startswith(">>>"):
            end = _doctest_end(lines, i)
            _fence(out, lines[i:end], "pycon")
            i = end
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            body = i + 1
            while body < len(lines) and not lines[body].strip():
                body += 1
            if body < len(lines) and _indent(lines[body]) > _indent(line):
                if stripped != "::":
                    out.append(line.rstrip()[:-1])
                end = _literal_end(lines, body, _indent(line))
                _fence(out, lines[body:end], "text")
                i = end
                continue
        if _BORDER.match(line):
            end = _table_end(lines, i)
            table = _simple_table(lines[i:end])
            if table is None:
                _fence(out, lines[i:end], "text")
            else:
                if out and out[-1].strip():
                    out.append("")
                out.extend([*table, ""])
            i = end
            continue
        out.append(line)
        i += 1
    return _squeeze_blank_lines(out)


def _squeeze_blank_lines(lines: list[str]) -> str:
    """One blank line at most between blocks (fenced blocks are kept as they are)."""
    kept: list[str] = []
    in_fence = False
    for line in lines:
        if line.strip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and not line.strip() and (not kept or not kept[-1].strip()):
            continue
        kept.append(line)
    return "\n".join(kept).rstrip() + "\n" if kept else ""


class DocstringsToMarkdown(Extension):
    """Rewrite every docstring with ``to_markdown`` as griffe loads it."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and docstring.value:
            docstring.value = to_markdown(docstring.value)
