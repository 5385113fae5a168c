"""The progress bar of a run: ``tqdm.auto`` (a widget in Jupyter, text in a terminal).

Shows rows done of the total, rows/s, and as a postfix the errors, tokens and cost so far.
Telemetry (``run.progress`` events) is emitted by the run itself, bar or no bar.

    >>> bar = Progress(total=100, enabled=True, initial=10)
    >>> bar.update(rows=20, errors=1, tokens=3_000, cost=0.002); bar.close()
"""

from __future__ import annotations

from typing import Any

__all__ = ["Progress"]


class Progress:
    """A thin, optional wrapper over ``tqdm.auto.tqdm``; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, enabled: bool = True, initial: int = 0,
                 desc: str = "dspex run") -> None:
        self._bar: Any = None
        self.errors = 0
        self.tokens = 0
        self.cost = 0.0
        if enabled and total > 0:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="row",
                             dynamic_ncols=True, smoothing=0.1)
            self._postfix()

    def update(self, rows: int, errors: int = 0, tokens: int = 0, cost: float = 0.0) -> None:
        """Add ``rows`` finished rows (and their errors, tokens and cost)."""
        self.errors += errors
        self.tokens += tokens
        self.cost += cost
        if self._bar is not None:
            self._bar.update(rows)
            self._postfix()

    def _postfix(self) -> None:
        self._bar.set_postfix_str(
            f"errors={self.errors:,} tokens={self.tokens:,} cost=${self.cost:,.4f}",
            refresh=False)

    def note(self, text: str) -> None:
        """Show a short status (``interrupted``, ``budget reached``) next to the bar."""
        if self._bar is not None:
            self._bar.set_description_str(f"dspex run ({text})")

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
