"""The summary of a DataFrame run (``dspex_lab.batch.run``), from ``df.attrs["usage"]``: how
it ended, rows by status (``batch.status``), tokens, cost, wall time and throughput.

    >>> RunSummary(df)                                   # a run that finished
    dspex run: 8 rows · 0 failed · 0 cached · 1,234 tokens · 1.52 s · 5.3 rows/s
    >>> RunSummary(interrupted)
    dspex run: interrupted · 1,439 finished · 3 failed · 3,558 not run · 0 cached · ... — rerun
    to finish the 3,558 rows left

``failed`` counts the rows that were tried and failed plus those whose inputs were rejected
(``invalid``); rows that never ran are ``not run``, never failures.
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display._html import box, cost, esc, ms
from dspex_lab.kinds import final_state

__all__ = ["RunSummary", "rerun_hint", "run_summary_parts"]


def _count(usage: dict[str, Any], key: str) -> int:
    return int(usage.get(key) or 0)


def run_summary_parts(usage: dict[str, Any]) -> list[str]:
    """The summary as short phrases (empty ones left out): the final state unless the run
    simply finished, rows (or finished rows when some did not run), failed, not run, cached,
    tokens, cost, wall time, rows/s."""
    rows, errors = _count(usage, "rows"), _count(usage, "errors")
    not_run, invalid = _count(usage, "not_run"), _count(usage, "invalid")
    state = final_state(str(usage.get("status") or "finished"), errors)
    tokens = int(usage.get("total_tokens", 0) or
                 usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    wall = usage.get("wall_s")
    rate = usage.get("rows_per_s")
    size = (f"{rows - not_run:,} finished" if not_run or state not in ("finished",
                                                                         "finished with errors")
            else f"{rows:,} row{'s' if rows != 1 else ''}")
    return [p for p in (
        state if state != "finished" else "",
        size,
        f"{errors:,} failed" + (f" ({invalid:,} invalid)" if invalid else ""),
        f"{not_run:,} not run" if not_run else "",
        f"{_count(usage, 'cached'):,} cached",
        f"{tokens:,} tokens" if tokens else "",
        cost(usage.get("cost")),
        ms(wall * 1000) if wall is not None else "",
        f"{rate:.1f} rows/s" if rate else "",
    ) if p]


def rerun_hint(usage: dict[str, Any]) -> str:
    """What to do next: ``rerun to finish the N rows left`` when rows did not run, else
    empty."""
    not_run = _count(usage, "not_run")
    if not not_run:
        return ""
    return f"rerun to finish the {not_run:,} row{'s' if not_run != 1 else ''} left"


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
        text = " · ".join(esc(p) for p in run_summary_parts(usage))
        hint = rerun_hint(usage)
        if hint:
            hint = f" — {esc(hint)}"
        elif _count(usage, "errors"):
            hint = (' — rows that failed have an <code>error</code> (and <code>status</code> '
                    '<code>error</code> or <code>invalid</code>); rerun to retry only them')
        return box("run", f"<b>{esc(self.title)}</b>: {text}{hint}")

    def __repr__(self) -> str:
        hint = rerun_hint(self.usage)
        return f"{self.title}: " + " · ".join(run_summary_parts(self.usage)) + (
            f" — {hint}" if hint else "")
