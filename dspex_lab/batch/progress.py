"""The progress bar of a run: ``tqdm.auto`` (a widget in Jupyter, text in a terminal).

The bar counts *finished* rows (answered, failed, rejected or cached: see ``batch.status``);
rows that were not run (interrupt, cancel, budget, open circuit) never move it, so an
interrupted run ends at e.g. 1,439/5,000. Its postfix shows the failed rows (LM errors and
invalid inputs), the rows not run, tokens and cost so far. ``finish(status)`` writes the final
state -- ``finished``, ``finished with errors``, ``interrupted``, ``cancelled``... -- in the
description and, in Jupyter, colours the bar (``STYLES``). Telemetry (``run.progress``
events) is emitted by the run itself, bar or no bar.

    >>> bar = Progress(total=100, enabled=True, initial=10)
    >>> bar.update(rows=20, errors=1, tokens=3_000, cost=0.002); bar.finish("finished")
    >>> bar.state, bar.style
    ('finished with errors', 'warning')
"""

from __future__ import annotations

from typing import Any

__all__ = ["STYLES", "Progress", "final_state"]

STYLES = {"finished": "success", "finished with errors": "warning", "cancelled": "warning",
          "budget reached": "warning", "interrupted": "danger", "circuit open": "danger",
          "pool broken": "danger", "failed": "danger"}
"""The bar's colour (ipywidgets ``bar_style``) for each final state."""

_STATES = {"budget": "budget reached", "circuit_open": "circuit open",
           "pool_broken": "pool broken"}


def final_state(status: str, errors: int) -> str:
    """The words for a run that ended with ``status`` (``usage["status"]``) and ``errors``
    failed rows: ``finished``, ``finished with errors``, ``interrupted``, ``cancelled``...

    >>> final_state("finished", 3), final_state("circuit_open", 3)
    ('finished with errors', 'circuit open')
    """
    if status == "finished":
        return "finished with errors" if errors else "finished"
    return _STATES.get(status, status.replace("_", " "))


class Progress:
    """A thin, optional wrapper over ``tqdm.auto.tqdm``; ``enabled=False`` shows nothing but
    still keeps the counts and the final ``state``."""

    def __init__(self, total: int, enabled: bool = True, initial: int = 0,
                 desc: str = "dspex run", errors: int = 0) -> None:
        self._bar: Any = None
        self.desc = desc
        self.total = total
        self.done = initial
        self.errors = errors  # of the ``initial`` rows: invalid inputs, say
        self.not_run = 0
        self.retries = 0
        self.tokens = 0
        self.cost = 0.0
        self.state: str | None = None  # set by finish()
        self.style: str | None = None
        if enabled and total > 0:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="row",
                             dynamic_ncols=True, smoothing=0.1)
            self._postfix()

    def update(self, rows: int, errors: int = 0, tokens: int = 0, cost: float = 0.0,
               not_run: int = 0, retries: int = 0) -> None:
        """Add ``rows`` finished rows (``errors`` of them failed, with their tokens and cost,
        after ``retries`` retried calls) and ``not_run`` rows that will not run (they do not
        move the bar)."""
        self.retries += retries
        self.done += rows
        self.errors += errors
        self.not_run += not_run
        self.tokens += tokens
        self.cost += cost
        if self._bar is not None:
            self._bar.update(rows)
            self._postfix()

    def _postfix(self) -> None:
        parts = [f"failed={self.errors:,}"]
        if self.not_run:
            parts.append(f"not run={self.not_run:,}")
        if self.retries:
            parts.append(f"retries={self.retries:,}")
        parts += [f"tokens={self.tokens:,}", f"cost=${self.cost:,.4f}"]
        self._bar.set_postfix_str(" ".join(parts), refresh=False)

    def note(self, text: str) -> None:
        """Show a short status (``interrupted``, ``budget reached``) next to the bar."""
        if self._bar is not None:
            self._bar.set_description_str(f"{self.desc} ({text})")

    def finish(self, status: str) -> None:
        """End the bar in its final state for a run that ended with ``status``."""
        self.state = final_state(status, self.errors)
        self.style = STYLES.get(self.state, "danger")
        if self._bar is None:
            return
        self.note(self.state)
        bar = self._bar
        self.close()
        pbar = getattr(getattr(bar, "container", None), "pbar", None)
        if pbar is not None:  # the Jupyter widget: tqdm picked success/danger on close
            pbar.bar_style = self.style

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
