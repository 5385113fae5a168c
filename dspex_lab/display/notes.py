"""Two small displayables for magic answers: ``Note`` (a sentence) and ``Facts`` (a titled
key/value table), both with HTML and plain text.

    >>> Note("Saved program 'qa': cot question: str -> answer: str")
    Saved program 'qa': cot question: str -> answer: str
    >>> Facts("LM", [("model", "openai/gpt-4o-mini"), ("source", "Dspex.lm")])
    LM
      model: openai/gpt-4o-mini
      source: Dspex.lm
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dspex_lab.display._html import box, esc, table, value_text

__all__ = ["Facts", "Note"]


class Note:
    """A short message; ``extra`` is anything displayable shown below it (e.g. a DataFrame)."""

    def __init__(self, text: str, extra: Any = None, kind: str = "note") -> None:
        self.text = text
        self.extra = extra
        self.kind = kind

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        body = f"<div>{esc(self.text)}</div>"
        extra_html = getattr(self.extra, "_repr_html_", None)
        if extra_html is not None:
            body += extra_html() or ""
        return box(self.kind, body)

    def __repr__(self) -> str:
        return self.text if self.extra is None else f"{self.text}\n{self.extra!r}"


class Facts:
    """A title and ``(label, value)`` rows."""

    def __init__(self, title: str, rows: Sequence[tuple[str, Any]], kind: str = "facts"
                 ) -> None:
        self.title = title
        self.rows = list(rows)
        self.kind = kind

    def as_dict(self) -> dict[str, Any]:
        """The facts as a plain dict (label -> value)."""
        return dict(self.rows)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        return box(self.kind, table(self.rows), title=self.title)

    def __repr__(self) -> str:
        return "\n".join([self.title, *(f"  {k}: {value_text(v, 300)}" for k, v in self.rows)])
