"""The vocabulary of dspex_lab, in one place: every other module imports these words.

========================= ==============================================================
``MODULE_KINDS``          module kinds (``--module``, ``as_program(module=)``, pipeline
                          steps) and the dspy class each builds
``MAGIC_MODULES``         the kinds the magics offer (``%%dspex --module``, ``Dspex.module``)
``OPERATIONS``            the single-call operation each kind is routed as
``ADAPTERS``              adapter names and their dspy class
``CALL_COLUMNS``          what a row's LM calls cost: error, latency, tokens, cost
``STATUS_COLUMNS``        ``status``, ``error_type``, ``attempts`` (see ``batch.status``)
``RESULT_COLUMNS``        every bookkeeping column of a result frame, in order
``STATUSES``              the values of ``status``; ``FAILED`` those counted as errors
``RETRYABLE_STATUS``      HTTP statuses worth another attempt (single calls and runs alike)
``RUN_STATES``            the words for how a run ended, and ``STATE_STYLES`` their colours
``EVENTS``                telemetry event kinds and the fields each carries
========================= ==============================================================

    >>> MODULE_KINDS["cot"], OPERATIONS["cot"], ADAPTERS["json"]
    ('ChainOfThought', 'chain_of_thought', 'JSONAdapter')
    >>> final_state("finished", errors=3)
    'finished with errors'
"""

from __future__ import annotations

__all__ = ["ADAPTERS", "CACHED", "CALL_COLUMNS", "ERROR", "EVENTS", "FAILED", "INVALID",
           "MAGIC_MODULES", "MODULE_KINDS", "NOT_RUN", "OK", "OPERATIONS", "RESULT_COLUMNS",
           "RETRYABLE_STATUS", "RUN_STATES", "STATE_STYLES", "STATUSES", "STATUS_COLUMNS",
           "final_state"]

# -- programs ----------------------------------------------------------------------------------

MODULE_KINDS: dict[str, str] = {
    "predict": "Predict",
    "cot": "ChainOfThought",
    "chain_of_thought": "ChainOfThought",
    "react": "ReAct",
    "module": "",
}
"""Module kinds and the dspy class each builds (``module`` wraps any ``dspy.Module``)."""

MAGIC_MODULES = ("predict", "cot", "react")
"""The module kinds ``%%dspex --module`` and ``Dspex.module`` accept."""

OPERATIONS: dict[str, str] = {"predict": "predict", "cot": "chain_of_thought",
                              "chain_of_thought": "chain_of_thought", "react": "react",
                              "module": "predict"}
"""The single-call operation (``predict``/``chain_of_thought``/``react``) of each kind."""

ADAPTERS: dict[str, str] = {"chat": "ChatAdapter", "json": "JSONAdapter", "xml": "XMLAdapter"}
"""Adapter names (``--adapter``, ``Dspex.adapter``, ``adapter=``) and the dspy class of each."""

# -- result frames -----------------------------------------------------------------------------

CALL_COLUMNS = ("error", "latency_ms", "prompt_tokens", "completion_tokens", "cost")
"""What a row's LM calls gave besides its outputs: the error, if any, time, tokens, cost."""

STATUS_COLUMNS = ("status", "error_type", "attempts")
"""The status columns of every result, after the other bookkeeping columns."""

RESULT_COLUMNS = (*CALL_COLUMNS, "cached", *STATUS_COLUMNS)
"""The bookkeeping columns of every result frame, after the output fields."""

OK = "ok"
ERROR = "error"
INVALID = "invalid"
NOT_RUN = "not_run"
CACHED = "cached"

STATUSES = (OK, ERROR, INVALID, NOT_RUN, CACHED)
"""Every value of the ``status`` column, in display order (meanings: ``batch.status``)."""

FAILED = (ERROR, INVALID)
"""The statuses of rows that failed (counted in ``errors``)."""

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
"""HTTP statuses that another attempt may cure (529: Anthropic's "overloaded")."""

# -- runs --------------------------------------------------------------------------------------

STATE_STYLES: dict[str, str] = {
    "finished": "success", "finished with errors": "warning", "cancelled": "warning",
    "budget reached": "warning", "interrupted": "danger", "circuit open": "danger",
    "pool broken": "danger", "failed": "danger"}
"""How a run ended (the progress bar's words) and its colour (ipywidgets ``bar_style``)."""

RUN_STATES = tuple(STATE_STYLES)
"""Every final state of a run."""

_STATE_WORDS = {"budget": "budget reached", "circuit_open": "circuit open",
                "pool_broken": "pool broken"}


def final_state(status: str, errors: int) -> str:
    """The words for a run that ended with ``status`` (``usage["status"]``) and ``errors``
    failed rows: ``finished``, ``finished with errors``, ``interrupted``, ``cancelled``...

    >>> final_state("finished", 3), final_state("circuit_open", 3)
    ('finished with errors', 'circuit open')
    """
    if status == "finished":
        return "finished with errors" if errors else "finished"
    return _STATE_WORDS.get(status, status.replace("_", " "))


# -- telemetry ---------------------------------------------------------------------------------

EVENTS: dict[str, tuple[str, ...]] = {
    "call": ("operation", "route", "model", "latency_ms", "prompt_tokens",
             "completion_tokens", "cost", "cached", "error"),
    "lm.call": ("model", "latency_ms", "prompt_tokens", "completion_tokens", "cost", "cached",
                "error"),
    "lm.calls": ("run_id", "table"),
    "router.route": ("operation", "route", "reason", "pool", "duration_ms", "error"),
    "run.started": ("run_id", "rows", "pending", "cached", "program", "model", "pool"),
    "run.progress": ("run_id", "rows", "rows_done"),
    "run.skipped": ("run_id", "rows", "reason"),
    "run.finished": ("run_id", "rows", "status"),
    "evaluate": ("metric", "score", "rows", "errors", "not_scored", "duration_ms"),
    "optimize": ("optimizer", "examples", "error", "duration_ms"),
    "pipeline.run": ("pipeline", "steps", "status", "latency_ms", "errors"),
    "pipeline.step": ("pipeline", "step"),
    "pool.zygote_ready": ("pool", "pid", "seconds"), "pool.zygote_died": ("pool", "ready"),
    "pool.worker_started": ("pool", "worker"), "pool.worker_died": ("pool", "worker", "reason"),
    "pool.worker_restarted": ("pool", "worker", "reason"),
    "pool.worker_recycled": ("pool", "worker", "tasks"),
    "pool.worker_retired": ("pool", "worker", "tasks", "reason"),
    "pool.task_queued": ("pool", "task"), "pool.task_started": ("pool", "task"),
    "pool.task_finished": ("pool", "task"),
    "pool.session_checkout": ("pool", "session", "worker"),
    "pool.session_checkin": ("pool", "session", "worker"),
    "pool.queue_depth": ("pool", "depth"), "pool.broken": ("pool", "error"),
}
"""Telemetry event kinds and the fields every one of them carries (events may add more);
``telemetry.per_call`` expands an ``lm.calls`` table into ``lm.call`` rows."""
