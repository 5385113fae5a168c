"""The options of a run, checked once, and the pool it runs on.

    >>> RunOptions(on_error="raise", budget_usd=2.0).on_budget
    'stop'
    >>> RunOptions(transport="pigeon")
    Traceback (most recent call last):
    ConfigurationError: transport='pigeon' is not valid; use one of: 'dspy', 'fast'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.batch.retry import BreakerConfig, RetryPolicy
from dspex_lab.errors import ConfigurationError

__all__ = ["RunOptions", "pool_processes", "pool_slots", "resolve_pool"]


@dataclass(frozen=True)
class RunOptions:
    """Every knob of ``run`` besides the program, the data and the LM (see ``run``)."""

    columns: Mapping[str, str] | None = None
    concurrency: int | None = None
    pool: Any = "general"
    on_error: str = "record"
    cache: bool = True
    progress: bool = True
    adapter: Any = None  # a short name or an adapter instance
    temperature: float | None = None
    budget_usd: float | None = None
    on_budget: str = "stop"
    resume: bool = False
    spill: Any = None
    transport: str = "dspy"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = 60.0
    rpm: float | None = None
    tpm: float | None = None
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    chunk_size: int | None = None
    cancel: Any = None
    on_part: Any = None
    settings: Any = None  # the kernel's dspy settings for the workers (KernelSettings)

    @property
    def cache_adapter(self) -> str | None:
        """The adapter (and carried settings) as cache keys name them."""
        if self.settings is not None:
            return self.settings.cache_tag
        from dspex_lab.kernel_settings import adapter_key

        return adapter_key(self.adapter)

    def __post_init__(self) -> None:
        _choice("on_error", self.on_error, ("record", "raise"))
        _choice("on_budget", self.on_budget, ("stop", "warn"))
        _choice("transport", self.transport, ("dspy", "fast"))
        for name in ("concurrency", "budget_usd", "rpm", "tpm", "chunk_size", "timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name}={value!r} must be a positive number or None.")
        if self.cancel is not None and not callable(getattr(self.cancel, "is_set", None)):
            raise ConfigurationError(
                f"cancel={self.cancel!r} is not an event; pass a threading.Event and call its "
                "set() to stop the run.")
        if self.on_part is not None and not callable(self.on_part):
            raise ConfigurationError(
                f"on_part={self.on_part!r} is not callable; pass a function that takes a "
                "DataFrame of finished rows.")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigurationError(
            f"{name}={value!r} is not valid; use one of: {', '.join(map(repr, allowed))}.")


def resolve_pool(pool: Any) -> tuple[Any, str]:
    """The pool object and its name (a name is looked up with ``get_pool``)."""
    if isinstance(pool, str):
        from dspex_lab.workers import get_pool

        return get_pool(pool), pool
    if not hasattr(pool, "submit"):
        raise ConfigurationError(
            f"pool={pool!r} is neither a pool name nor an object with submit(); pass e.g. "
            "pool='general'.")
    return pool, str(getattr(pool, "name", type(pool).__name__))


def pool_processes(pool: Any, chunks: int) -> int:
    """How many processes run the ``chunks`` chunks in flight (they share per-process state
    such as a learned rate limit): one for an in-process thread pool, else one each."""
    import concurrent.futures as cf

    return 1 if isinstance(pool, cf.ThreadPoolExecutor) else chunks


def pool_slots(pool: Any) -> int:
    """How many chunks the pool runs at once (its worker count)."""
    return max(1, int(getattr(pool, "size", None) or getattr(pool, "_max_workers", 1)))
