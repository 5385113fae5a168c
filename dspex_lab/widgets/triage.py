"""``Triage``: a run's failed rows grouped by cause, their prompts, and targeted retries (the
model of the ``FailureTriage`` widget; it works without Jupyter).

Causes come from the run's ``status`` column (``batch.status``: ``not_run`` and ``invalid``
rows need no guessing) and, for rows that failed in the LM (``error``), from their
``error_type`` and ``error`` text:

========== ==================================================================================
parse      the LM answered but its reply did not parse or fit the output types
rate_limit 429 / rate limit reached (after the run's own retries)
timeout    the call timed out
input      the row's inputs did not fit the signature (no LM call was made)
not_run    the row never ran: cancelled, interrupted, budget reached, circuit breaker open
exception  anything else (server errors, connection errors, exceptions in custom modules)
========== ==================================================================================

``retry(rows, lm=..., temperature=..., adapter=...)`` re-runs the chosen rows with
``batch.run`` and writes their new outputs and bookkeeping back into the run's DataFrame
(in place: the frame you hold is updated; ``frame.attrs["retries"]`` logs each retry).

    >>> t = Triage(df, program="question -> answer")
    >>> t.counts()
    {'rate_limit': 12, 'timeout': 3}
    >>> t.retry(t.rows("rate_limit"), lm="fast", temperature=0.7)    # the updated frame
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dspex_lab.batch import status as _status
from dspex_lab.batch.frame import RESULT_COLUMNS
from dspex_lab.errors import ConfigurationError

__all__ = ["CAUSES", "FailedRow", "Triage", "classify_error", "render_prompt", "row_cause"]

CAUSES = {"parse": "parse errors", "rate_limit": "rate limited", "timeout": "timeouts",
          "input": "invalid inputs", "not_run": "not run", "exception": "exceptions"}
"""Cause -> label, in display order."""

META = RESULT_COLUMNS
_PARSE_TYPES = {"AdapterParseError", "JSONDecodeError"}
_RATE_TYPES = {"RateLimitError", "LMRateLimitError"}
_TIMEOUT_TYPES = {"Timeout", "TimeoutError", "TaskTimeout", "APITimeoutError"}
_PARSE = re.compile(r"parse|AdapterParseError|JSONDecodeError|problems? with the outputs|"
                    r"could not (?:find|extract) .*field", re.I)
_RATE = re.compile(r"rate.?limit|\b429\b|too many requests", re.I)
_TIMEOUT = re.compile(r"time.?out|timed out", re.I)
_RESPONSE = re.compile(r"LM Response:\s*(.*?)\s*Expected to find output fields", re.S)


def classify_error(error: Any, error_type: Any = None) -> str | None:
    """What made a *call* fail: ``parse``, ``rate_limit``, ``timeout`` or ``exception``, from
    its ``error_type`` (the exception class) and ``error`` text (None when there is no error).
    Whether a row ran at all is its ``status``, not its text: see ``row_cause``.

    >>> classify_error("Rate limit reached", "LMRateLimitError")
    'rate_limit'
    >>> classify_error("AdapterParseError: Adapter ChatAdapter failed to parse the LM response")
    'parse'
    """
    if _missing(error):
        return None
    text, kind = str(error), "" if _missing(error_type) else str(error_type)
    if kind in _RATE_TYPES or _RATE.search(text):
        return "rate_limit"
    if kind in _TIMEOUT_TYPES or _TIMEOUT.search(text):
        return "timeout"
    if kind in _PARSE_TYPES or _PARSE.search(text):
        return "parse"
    return "exception"


def row_cause(status: Any, error: Any = None, error_type: Any = None) -> str | None:
    """The cause of one row of a run from its status columns: ``not_run``, ``input``
    (status ``invalid``), a ``classify_error`` cause (status ``error``), or None (``ok``,
    ``cached``).

    >>> row_cause("not_run", "Cancelled: the run was cancelled", "Cancelled")
    'not_run'
    """
    if status == _status.NOT_RUN:
        return "not_run"
    if status == _status.INVALID:
        return "input"
    if status == _status.ERROR:
        return classify_error(error if not _missing(error) else "", error_type) or "exception"
    return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class FailedRow:
    """One failed row: its position in the frame, index label, cause, error text and inputs;
    ``response`` is the LM's raw reply when the error carries it (parse errors)."""

    position: int
    label: Any
    cause: str
    error: str
    inputs: dict[str, Any]

    @property
    def response(self) -> str | None:
        match = _RESPONSE.search(self.error)
        return match.group(1) if match else None


def render_prompt(program: Any, inputs: dict[str, Any], adapter: str | None = None
                  ) -> str | None:
    """The prompt DSPy sends for ``inputs`` (the adapter's messages as text), or None when it
    cannot be rebuilt here (a multi-step program, a custom module)."""
    from dspex_lab.programs import as_program
    from dspex_lab.runtime import build_module, make_adapter

    try:
        module = build_module(as_program(program))
        predictors = module.predictors()
        if len(predictors) != 1:
            return None
        import dspy

        pred = predictors[0]
        chosen = make_adapter(adapter) or dspy.settings.adapter or dspy.ChatAdapter()
        messages = chosen.format(pred.signature, demos=list(pred.demos or []), inputs=inputs)
    except Exception:  # a prompt preview must never fail the triage
        return None
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


class Triage:
    """The failed rows of a run's DataFrame, grouped by cause; see the module docstring.

    ``program`` is what the run ran (needed for prompts and retries); ``columns`` the run's
    ``columns=`` mapping, if it had one; ``run_options`` are defaults for retries (``lm``,
    ``pool``...).
    """

    def __init__(self, frame: Any = None, program: Any = None, *,
                 columns: dict[str, str] | None = None, **run_options: Any) -> None:
        if frame is None:
            from dspex_lab.batch import last_run

            frame = last_run()
        if frame is None or "status" not in getattr(frame, "columns", ()):
            raise ConfigurationError("Triage needs a run's result DataFrame (with 'status' and "
                                     "'error' columns); run dspex_lab.run(...) first or pass "
                                     "its frame.")
        self.frame = frame
        self.program = program
        self.columns = dict(columns or {})
        self.run_options = run_options

    # -- grouping ------------------------------------------------------------------------------
    def failed(self) -> list[FailedRow]:
        """Every row that did not get an answer (status ``error``, ``invalid`` or
        ``not_run``), in frame order."""
        frame = self.frame
        errors = frame["error"].tolist()
        types = frame["error_type"].tolist() if "error_type" in frame.columns else \
            [None] * len(errors)
        inputs = self._input_columns()
        out = []
        for pos, (state, err, kind) in enumerate(zip(frame["status"].tolist(), errors, types,
                                                     strict=True)):
            cause = row_cause(state, err, kind)
            if cause is None:
                continue
            values = {c: _plain(frame.iloc[pos][c]) for c in inputs}
            out.append(FailedRow(pos, frame.index[pos], cause,
                                 "" if _missing(err) else str(err), values))
        return out

    def groups(self) -> dict[str, list[FailedRow]]:
        """Failed rows by cause (causes in ``CAUSES`` order, empty ones left out)."""
        found: dict[str, list[FailedRow]] = {c: [] for c in CAUSES}
        for row in self.failed():
            found[row.cause].append(row)
        return {c: rows for c, rows in found.items() if rows}

    def counts(self) -> dict[str, int]:
        """How many failed rows each cause has."""
        return {c: len(rows) for c, rows in self.groups().items()}

    def rows(self, cause: str) -> list[int]:
        """The positions of the failed rows with ``cause``."""
        if cause not in CAUSES:
            raise ConfigurationError(f"Unknown cause {cause!r}; use one of: {', '.join(CAUSES)}.")
        return [r.position for r in self.failed() if r.cause == cause]

    def prompt(self, row: FailedRow, adapter: str | None = None) -> str | None:
        """The prompt of ``row`` (see ``render_prompt``); None without a program."""
        return None if self.program is None else render_prompt(self.program, row.inputs,
                                                               adapter)

    # -- retrying ------------------------------------------------------------------------------
    def trace(self, row: FailedRow) -> Any:
        """The row's trace (``dspex_lab.trace.RowTrace``: its LM calls, attempts, errors)."""
        from dspex_lab.accessor import DspexAccessor

        return DspexAccessor(self.frame).trace(row.label)

    def retry(self, positions: Iterable[int], *, lm: Any = None, temperature: float | None = None,
              adapter: str | None = None, **run_options: Any) -> Any:
        """Re-run the rows at ``positions`` (with another LM, temperature or adapter) and merge
        the new outputs, errors and usage into the frame in place; returns the frame."""
        positions = sorted(set(int(p) for p in positions))
        if not positions:
            return self.frame
        if self.program is None:
            raise ConfigurationError("Retrying needs the program the run used; pass "
                                     "Triage(frame, program=...) (or FailureTriage(..., "
                                     "program=...)).")
        from dspex_lab.batch import run

        inputs = self._input_columns()
        data = self.frame.iloc[positions][inputs].reset_index(drop=True)
        options = {"progress": False, **self.run_options, **run_options}
        if self.columns:
            options["columns"] = self.columns
        options["lm"] = lm if lm is not None else options.get("lm")
        fresh = run(self.program, data, temperature=temperature, adapter=adapter, **options)
        self._merge(positions, fresh, inputs)
        log = self.frame.attrs.setdefault("retries", [])
        fixed = int(fresh["status"].isin((_status.OK, _status.CACHED)).sum())
        log.append({"rows": len(positions), "fixed": fixed,
                    "lm": None if options["lm"] is None else str(getattr(options["lm"], "model",
                                                                          options["lm"])),
                    "temperature": temperature, "adapter": adapter})
        return self.frame

    def _merge(self, positions: list[int], fresh: Any, inputs: list[str]) -> None:
        for col in fresh.columns:
            if col in inputs:
                continue
            target = _target_column(self.frame, col)
            values = fresh[col].tolist()
            if target not in self.frame.columns:
                self.frame[target] = None
            self.frame.iloc[positions, self.frame.columns.get_loc(target)] = values

    def _input_columns(self) -> list[str]:
        """The frame columns the program reads (all non-result columns without a program)."""
        cols = [str(c) for c in self.frame.columns]
        if self.program is None:
            return [c for c in cols if c not in META]
        from dspex_lab.batch.inputs import input_fields
        from dspex_lab.programs import as_program

        fields = input_fields(as_program(self.program), cols)
        return [self.columns.get(f, f) for f in fields if self.columns.get(f, f) in cols]


def _target_column(frame: Any, name: str) -> str:
    """Where a retry's column goes in the original frame: ``batch.run`` adds ``_pred``
    (outputs) or ``_run`` (bookkeeping) to a result column only when an input column already
    has its name, so the suffixed column wins when both exist."""
    if name in frame.columns:
        for suffix in ("_pred", "_run"):
            if f"{name}{suffix}" in frame.columns:
                return f"{name}{suffix}"
    return name


def _plain(value: Any) -> Any:
    return value.as_py() if hasattr(value, "as_py") else value
