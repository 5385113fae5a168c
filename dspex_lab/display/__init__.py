"""Rich reprs for notebooks: predictions, run summaries, pool status, call history, notes.

Each is a small object with ``_repr_mimebundle_`` (``text/html`` themed with JupyterLab's CSS
variables, plus ``text/plain``); nothing here runs a call or starts a pool.

    >>> from dspex_lab.display import PredictionView, RunSummary, PoolStatusView
    >>> PredictionView(dspex_lab.predict("question -> answer", question="2 + 3?"))
    >>> RunSummary(results_df)                       # rows, errors, tokens, cost, rows/s
    >>> PoolStatusView(dspex_lab.pool_status())
"""

from dspex_lab.display.formatters import register, unregister
from dspex_lab.display.history import HistoryView
from dspex_lab.display.notes import Facts, Note
from dspex_lab.display.pools import PoolStatusView
from dspex_lab.display.prediction import PredictionView, prediction_html, prediction_text
from dspex_lab.display.run import RunSummary

__all__ = [
    "Facts",
    "HistoryView",
    "Note",
    "PoolStatusView",
    "PredictionView",
    "RunSummary",
    "prediction_html",
    "prediction_text",
    "register",
    "unregister",
]
