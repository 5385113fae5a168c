"""``%dspex_history [N]``: the last N calls of this kernel with prompts and responses.

    >>> history_table(3).records[-1].outputs
    {'answer': 'Paris'}
"""

from __future__ import annotations

from dspex_lab import history
from dspex_lab.display import HistoryView
from dspex_lab.errors import ConfigurationError

__all__ = ["history_table"]


def history_table(n: int = 5, clear: bool = False) -> HistoryView:
    """The last ``n`` calls (oldest first); ``clear=True`` forgets them afterwards."""
    if n < 1:
        raise ConfigurationError(f"%dspex_history takes a positive count, not {n}; "
                                 "e.g. %dspex_history 3.")
    view = HistoryView(history.recent(n))
    if clear:
        history.clear()
    return view
