"""The summary of a DataFrame run (``dspex_lab.batch.run``): rows, errors, cached rows,
tokens, cost, wall time and throughput, from ``df.attrs["usage"]``.

    >>> df = dspex_lab.batch.run("question -> answer", questions)
    >>> RunSummary(df)
    8 rows · 0 errors · 0 cached · 1,234 tokens · 1.52 s · 5.3 rows/s
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display._html import box, cost, esc, ms

__all__ = ["RunSummary", "run_summary_parts"]


def run_summary_parts(usage: dict[str, Any]) -> list[str]:
    """The summary as short phrases (empty ones left out)."""
    rows, errors = int(usage.get("rows", 0)), int(usage.get("errors", 0))
    tokens = int(usage.get("total_tokens", 0) or
                 usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    wall = usage.get("wall_s")
    rate = usage.get("rows_per_s")
    return [p for p in (
        f"{rows:,} row{'s' if rows != 1 else ''}",
        f"{errors:,} error{'s' if errors != 1 else ''}",
        f"{int(usage.get('cached', 0)):,} cached",
        f"{tokens:,} tokens" if tokens else "",
        cost(usage.get("cost")),
        ms(wall * 1000) if wall is not None else "",
        f"{rate:.1f} rows/s" if rate else "",
    ) if p]


class RunSummary:
    """A one-line summary of a run result; ``frame`` is the result DataFrame."""

    def __init__(self, frame: Any, title: str = "dspex run") -> None:
        self.frame = frame
        self.title = title

    @property
    def usage(self) -> dict[str, Any]:
        return dict(getattr(self.frame, "attrs", {}).get("usage", {}))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        usage = self.usage
        parts = run_summary_parts(usage)
        errors = int(usage.get("errors", 0))
        text = " · ".join(esc(p) for p in parts)
        hint = (' — rows that failed have an <code>error</code>; rerun to retry only them'
                if errors else "")
        return box("run", f"<b>{esc(self.title)}</b>: {text}{hint}")

    def __repr__(self) -> str:
        return f"{self.title}: " + " · ".join(run_summary_parts(self.usage))
