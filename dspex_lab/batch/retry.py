"""Who retries, how long to wait, and when to stop calling a failing LM.

dspex_lab owns retries of batch LM calls: the ``dspy.LM`` a batch uses is a copy with
``num_retries=0`` (DSPy and litellm would otherwise retry too, multiplying attempts). A failed
call is classified once (``classify``); 429s, 5xx, timeouts and connection errors are retried
with exponential backoff and full jitter, honouring ``Retry-After``; anything else (a 400, a
bad key, a malformed reply the server will send again) fails its row at once. Each row also has
a budget in time, ``RetryPolicy.max_elapsed_s`` (default 5 s from its first call): a retry that
would start later than that is not made, so one row that always fails cannot hold a small run
for long (a 429 is not counted against it: waiting is what the provider asked). A
``CircuitBreaker`` stops
calling an LM that keeps failing, tries one call again after a pause (half-open) and carries
on if the LM recovered; if it did not, the rows left error with ``CircuitOpen``.

    >>> policy = RetryPolicy(max_retries=3, base_delay=0.5, max_delay=8)
    >>> 0 <= policy.backoff(2) <= 2.0
    True
    >>> policy.backoff(0, retry_after=1.5)
    1.5
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from dspex_lab.lm.failures import Failure, classify

__all__ = ["BreakerConfig", "CircuitBreaker", "Failure", "RetryPolicy", "classify"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``k`` waits ``U(0, base * 2**k)``, capped
    at ``max_delay``; a server's ``Retry-After`` (capped at ``max_retry_after``) wins.

    ``max_elapsed_s`` is a row's retry budget in time, counted from its first call: no retry
    of a failure other than a 429 starts after it (None: only ``max_retries`` limits)."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    max_elapsed_s: float | None = 5.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0 or (
                self.max_elapsed_s is not None and self.max_elapsed_s < 0):
            raise ValueError(
                f"RetryPolicy needs non-negative values, got max_retries={self.max_retries}, "
                f"base_delay={self.base_delay}, max_delay={self.max_delay}, "
                f"max_elapsed_s={self.max_elapsed_s}.")

    def gives_up(self, attempt: int, elapsed_s: float, wait_s: float,
                 failure: Failure | None = None) -> bool:
        """Whether a row stops after failed attempt ``attempt`` (from 0): out of retries, not
        retryable, or (except for a 429) the retry would start after ``max_elapsed_s``.

        >>> RetryPolicy(max_elapsed_s=2).gives_up(0, elapsed_s=1.5, wait_s=1.0)
        True
        """
        if attempt >= self.max_retries or (failure is not None and not failure.retryable):
            return True
        rate_limited = failure is not None and failure.rate_limited
        return (self.max_elapsed_s is not None and not rate_limited
                and elapsed_s + wait_s > self.max_elapsed_s)

    def backoff(self, attempt: int, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 30)))
        return (rng or random).uniform(0.0, ceiling)




@dataclass(frozen=True)
class BreakerConfig:
    """Open the circuit after ``failures`` LM-down failures in a row with no success for
    ``seconds`` seconds. Then, every ``cooldown`` seconds, one trial call goes through
    (half-open): a success closes the circuit and the run carries on; after ``trials`` failed
    trials it stays open and the rows left fail with ``CircuitOpen`` (``trials=0``: at once).
    ``enabled=False`` never opens it."""

    failures: int = 50
    seconds: float = 10.0
    enabled: bool = True
    cooldown: float = 5.0
    trials: int = 3

    def __post_init__(self) -> None:
        if self.failures < 1 or self.seconds < 0 or self.cooldown < 0 or self.trials < 0:
            raise ValueError(
                f"BreakerConfig needs failures >= 1 and non-negative seconds, cooldown and "
                f"trials; got failures={self.failures}, seconds={self.seconds}, "
                f"cooldown={self.cooldown}, trials={self.trials}.")


class CircuitBreaker:
    """closed -> open -> half-open -> closed, or -> tripped (see ``BreakerConfig``).

    Calls ask ``await admit()`` first: ``"go"`` (closed), ``"trial"`` (the one call let
    through after a cooldown), or None (tripped: fail the row). While the circuit is open or
    a trial is out, callers wait. Outcomes go to ``record(ok, error, trial=...)``; only LM-down
    failures and successes count (429s ask us to slow down, not to stop). Not thread-safe:
    one per event loop.

    >>> breaker = CircuitBreaker(BreakerConfig(failures=2, seconds=0, trials=0))
    >>> breaker.record(ok=False); breaker.record(ok=False); breaker.open
    True
    """

    def __init__(self, config: BreakerConfig | None = None,
                 clock: Any = time.monotonic) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self.state = "closed"
        self.consecutive = 0
        self.last_success = clock()
        self.opened_at = 0.0
        self.failed_trials = 0
        self.recoveries = 0
        self.last_error: str | None = None

    def record(self, ok: bool, error: str | None = None, trial: bool = False) -> None:
        """Record one attempt's outcome (only successes and LM-down failures)."""
        now = self._clock()
        if ok:
            if self.state in ("open", "half_open"):
                self.recoveries += 1
            self.state, self.consecutive, self.failed_trials = "closed", 0, 0
            self.last_success = now
            return
        self.consecutive += 1
        self.last_error = error or self.last_error
        cfg = self.config
        if trial and self.state == "half_open":
            self.failed_trials += 1
            self._open(now, give_up=self.failed_trials >= cfg.trials)
        elif (self.state == "closed" and cfg.enabled and self.consecutive >= cfg.failures
              and now - self.last_success >= cfg.seconds):
            self._open(now, give_up=cfg.trials == 0)

    def inconclusive(self) -> None:
        """The trial got an answer that says nothing of the LM's health (a 429): pause for
        another cooldown, then let another trial through."""
        if self.state == "half_open":
            self._open(self._clock(), give_up=False)

    def _open(self, now: float, give_up: bool) -> None:
        self.state = "tripped" if give_up else "open"
        self.opened_at = now

    async def admit(self, poll: float = 0.05) -> str | None:
        """Wait until a call may go: ``"go"``, ``"trial"``, or None once tripped."""
        import asyncio

        while True:
            if self.state == "closed":
                return "go"
            if self.state == "tripped":
                return None
            left = self.opened_at + self.config.cooldown - self._clock()
            if self.state == "open" and left <= 0:
                self.state = "half_open"
                return "trial"
            await asyncio.sleep(min(poll, left) if left > 0 else poll)

    @property
    def open(self) -> bool:
        """True once the breaker gave up on the LM (the run stops sending it work)."""
        return self.state == "tripped"

    def message(self) -> str:
        """The sentence rows get when the circuit is open."""
        last = f" The last error was: {self.last_error}" if self.last_error else ""
        trials = (f", and {self.failed_trials} trial call(s) after a {self.config.cooldown:g} s "
                  "pause failed too" if self.failed_trials else "")
        return (f"The circuit breaker is open: the LM failed {self.consecutive} times in a row "
                f"with no success for {self.config.seconds:g} s{trials}, so dspex_lab stopped "
                f"calling it.{last} Check the LM, then re-run: finished rows come from the "
                "cache.")
