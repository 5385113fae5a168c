"""How a failed LM call should be treated: retried or not, rate-limited, the LM unwell.

One rule for single calls and batch runs alike (``RETRYABLE_STATUS`` in ``kinds``).

    >>> classify(TimeoutError()).retryable
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dspex_lab.kinds import RETRYABLE_STATUS

__all__ = ["Failure", "classify"]


@dataclass(frozen=True, slots=True)
class Failure:
    """How a failed LM call should be treated."""

    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    rate_limited: bool = False

    @property
    def lm_down(self) -> bool:
        """A failure that says the LM itself is unwell (5xx, timeout, connection), which is
        what the circuit breaker counts; a 429 only asks us to slow down."""
        return self.retryable and not self.rate_limited


def classify(exc: BaseException) -> Failure:
    """Classify an exception raised by an LM call (DSPy's error tree, dspex_lab's ``LMError``,
    or plain timeouts and connection errors)."""
    status = _int_or_none(getattr(exc, "status", None) or getattr(exc, "status_code", None))
    retry_after = _float_or_none(getattr(exc, "retry_after", None))
    rate_limited = status == 429 or type(exc).__name__ in ("LMRateLimitError", "RateLimitError")
    retryable = rate_limited or _dspy_retryable(exc)
    if not retryable:
        explicit = getattr(exc, "retryable", None)
        if explicit is not None:
            retryable = bool(explicit)
        elif status is not None:
            retryable = status in RETRYABLE_STATUS
        else:
            retryable = isinstance(exc, TimeoutError | ConnectionError)
    from dspex_lab.errors import CircuitOpen

    if isinstance(exc, CircuitOpen):
        retryable = False
    return Failure(retryable, status, retry_after, rate_limited)


def _dspy_retryable(exc: BaseException) -> bool:
    try:
        from dspy.utils.exceptions import is_retryable_lm_error
    except ImportError:  # pragma: no cover - DSPy is a dependency
        return False
    return isinstance(exc, Exception) and is_retryable_lm_error(exc)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
