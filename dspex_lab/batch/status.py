"""What happened to each row of a run: the ``status`` column and its vocabulary.

Every result frame of ``dspex_lab.run`` has three bookkeeping columns that say, without
reading any error text, whether and how a row ran:

=========== ======================================================================= ========
status      meaning                                                                 attempts
=========== ======================================================================= ========
``ok``      the LM answered and the answer fits the signature                       >= 1
``error``   the row was tried and failed (after the run's retries): ``error`` says   >= 0
            why, ``error_type`` is the exception's class name (``AdapterParseError``,
            ``InternalServerError``, ``RemoteError``...)
``invalid`` its inputs do not fit the signature: rejected before any LM call         0
            (``error_type`` ``ValidationError``)
``not_run`` never run: the run was interrupted (``Interrupted``), cancelled             0
            (``Cancelled``), stopped at its budget (``BudgetExceeded``), the circuit
            breaker was open (``CircuitOpen``) or the pool broke (``PoolError``)
``cached``  answered from the result cache, no LM call                              0
=========== ======================================================================= ========

``attempts`` counts the LM calls tried for the row, retries included (null when unknown: a
worker that crashed with the row's chunk). A re-run computes the ``error`` and ``not_run``
rows again (``error`` rows that failed for good fail again, unless the cause went away).

Usage totals (``df.attrs["usage"]``) count rows by status: ``ok``, ``cached``, ``invalid``,
``not_run``, and ``errors`` -- the rows that *failed*: ``error`` plus ``invalid`` (not the rows
that never ran), so ``ok + cached + errors + not_run == rows``.

    >>> counts(frame["status"])
    {'ok': 1436, 'error': 3, 'invalid': 0, 'not_run': 3558, 'cached': 3}
    >>> frame[frame["status"] == NOT_RUN]            # the rows a rerun would compute
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dspex_lab.kinds import CACHED, ERROR, FAILED, INVALID, NOT_RUN, OK, STATUS_COLUMNS, STATUSES

__all__ = ["CACHED", "COLUMNS", "ERROR", "FAILED", "INVALID", "NOT_RUN", "OK", "STATUSES",
           "TYPES", "counts", "failed_mask", "finished", "from_errors", "part_columns",
           "totals"]

COLUMNS = STATUS_COLUMNS
"""The status columns of every result, after the other bookkeeping columns."""

TYPES = {"status": pa.string(), "error_type": pa.string(), "attempts": pa.int64()}
"""Their Arrow types."""


def from_errors(errors: Iterable[str | None]) -> list[str]:
    """``ok``/``error`` for rows that were tried, from their ``error`` cells (None = ok)."""
    return [OK if e is None else ERROR for e in errors]


def part_columns(n: int, status: str | list[str], error_type: str | list[str | None] | None,
                 attempts: int | list[int | None] | None) -> dict[str, pa.Array]:
    """The three status columns for ``n`` rows (a single value is repeated)."""
    def spread(value: Any) -> list[Any]:
        return list(value) if isinstance(value, list) else [value] * n

    for name, value in (("status", status), ("error_type", error_type),
                        ("attempts", attempts)):
        if isinstance(value, list) and len(value) != n:
            raise ValueError(f"internal error: {len(value)} {name} values for {n} rows")
    bad = set(spread(status)) - set(STATUSES)
    if bad:
        raise ValueError(f"internal error: unknown row status {sorted(bad)}; use one of "
                         f"{STATUSES}")
    return {"status": pa.array(spread(status), pa.string()),
            "error_type": pa.array(spread(error_type), pa.string()),
            "attempts": pa.array(spread(attempts), pa.int64())}


def counts(status: Any) -> dict[str, int]:
    """Rows per status (every status, zeros included) of a ``status`` column: an Arrow
    array/chunked array or anything iterable (a pandas Series)."""
    if isinstance(status, (pa.Array, pa.ChunkedArray)):
        found = {row["values"]: row["counts"]
                 for row in pc.value_counts(status).to_pylist() if row["values"] is not None}
    elif hasattr(status, "value_counts"):  # a pandas Series
        found = status.value_counts().to_dict()
    else:
        found = {}
        for value in status:
            found[value] = found.get(value, 0) + 1
    return {s: int(found.get(s, 0)) for s in STATUSES}


def totals(status: Any) -> dict[str, int]:
    """The usage counts of a ``status`` column: ``ok``, ``cached``, ``invalid``,
    ``not_run`` and ``errors`` (failed rows: ``error`` + ``invalid``)."""
    c = counts(status)
    return {"errors": c[ERROR] + c[INVALID], "ok": c[OK], "cached": c[CACHED],
            "invalid": c[INVALID], "not_run": c[NOT_RUN]}


def finished(c: dict[str, int]) -> int:
    """Rows that have a final result (answered, failed, rejected or cached) in ``counts``."""
    return sum(v for k, v in c.items() if k != NOT_RUN)


def failed_mask(frame: Any) -> Any:
    """A numpy mask of the failed rows (``error`` or ``invalid``) of a result frame."""
    import numpy as np

    return np.isin(frame["status"].astype(object).to_numpy(), FAILED)
