"""Batch runs: a program over every row of a DataFrame, with retries, caching, progress,
usage and cost, spill/resume, adaptive concurrency, budgets, estimates and record/replay.

    >>> from dspex_lab.batch import run, last_run, estimate, record, replay
    >>> df = run("question -> answer", questions)

Modules: ``run`` (the public ``run``/``last_run``), ``inputs`` (columns and row checks),
``schedule`` (chunks on the pool), ``chunk`` (the worker-side executor), ``transport`` (the
optional fast transport), ``retry`` (backoff, circuit breaker), ``concurrency`` (AIMD, rate
limits), ``ratelimits`` (pacing by the provider's rate-limit headers), ``spill`` (results on
disk, resume), ``frame`` (the output frame and totals),
``progress`` (the bar), ``estimate`` (dry runs), ``recording`` (record/replay LM traffic).
"""

from dspex_lab.batch.concurrency import AIMDLimiter, SharedLimit, TokenBucket
from dspex_lab.batch.estimate import Estimate, estimate
from dspex_lab.batch.ratelimits import Pacer, RateLimitHint
from dspex_lab.batch.recording import Recording, record, replay
from dspex_lab.batch.retry import BreakerConfig, CircuitBreaker, RetryPolicy
from dspex_lab.batch.run import RunOptions, last_run, run

__all__ = [
    "AIMDLimiter",
    "BreakerConfig",
    "CircuitBreaker",
    "Estimate",
    "Pacer",
    "RateLimitHint",
    "Recording",
    "RetryPolicy",
    "RunOptions",
    "SharedLimit",
    "TokenBucket",
    "estimate",
    "last_run",
    "record",
    "replay",
    "run",
]
