"""How many LM calls run at once, and how fast: AIMD limits and token buckets.

Two levels, kept simple on purpose:

* the kernel (``SharedLimit``) owns the run's total concurrency. It hands each chunk a share
  (``total / slots``) and adapts the total from per-chunk feedback: a chunk that saw 429s
  halves it (once per "generation", so chunks already in flight do not halve it again), a
  clean chunk adds a little. The same total is shared by every worker of the pool.
* a worker (``AIMDLimiter``) starts its chunk at that share and reacts at once inside the
  chunk: halve on a 429, grow by about one slot per window of successes.

Rate limits (``rpm``/``tpm``) are token buckets (``TokenBucket``); the kernel gives each
running chunk ``1/slots`` of the run's rate, so the workers together never exceed it.

    >>> shared = SharedLimit(total=32, slots=2)
    >>> shared.share(), shared.feedback(rate_limited=3, generation=0), shared.share()
    (16, None, 8)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["AIMDLimiter", "SharedLimit", "TokenBucket"]


class SharedLimit:
    """The kernel's total concurrency for a run, adapted from per-chunk feedback."""

    def __init__(self, total: int, slots: int, minimum: int = 1, step: float | None = None
                 ) -> None:
        self.maximum = max(1, int(total))
        self.total = float(self.maximum)
        self.slots = max(1, int(slots))
        self.minimum = max(1, min(int(minimum), self.maximum))
        self.step = step if step is not None else max(1.0, self.maximum / 16)
        self.generation = 0
        self.decreases = 0

    def share(self) -> int:
        """Concurrency for the next chunk: the total split over the chunks running at once."""
        return max(1, math.floor(self.total / self.slots))

    def feedback(self, rate_limited: int, generation: int) -> None:
        """Adapt from a finished chunk (submitted at ``generation``) that saw ``rate_limited``
        429 responses."""
        if rate_limited > 0:
            if generation >= self.generation:  # a chunk sized after the last decrease
                self.total = max(float(self.minimum), self.total / 2)
                self.generation += 1
                self.decreases += 1
        else:
            self.total = min(float(self.maximum), self.total + self.step)


class AIMDLimiter:
    """An async concurrency limit that halves on overload and grows on success. Waiters are
    woken one per free slot, first come first served (no thundering herd).

    >>> limiter = AIMDLimiter(8, maximum=16)
    >>> async def call():
    ...     async with limiter.slot() as generation:
    ...         limiter.overload(generation)        # a 429: the limit halves
    >>> asyncio.run(call()); limiter.limit
    4.0
    """

    def __init__(self, limit: int, maximum: int | None = None, minimum: int = 1) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum or limit)
        self.limit = float(min(max(limit, self.minimum), self.maximum))
        self.inflight = 0
        self.generation = 0
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one of the ``limit`` slots; yields the generation it was granted in."""
        await self._acquire()
        try:
            yield self.generation
        finally:
            self.inflight -= 1
            self._wake()

    async def _acquire(self) -> None:
        if not self._waiters and self.inflight < max(1, int(self.limit)):
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # _wake counted us in before setting the result
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.inflight -= 1
                self._wake()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _take(self) -> None:
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)

    def _wake(self) -> None:
        while self._waiters and self.inflight < max(1, int(self.limit)):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def success(self) -> None:
        """One call succeeded: grow by ``1/limit`` (about one slot per full window)."""
        self.limit = min(float(self.maximum), self.limit + 1.0 / max(1.0, self.limit))
        self._wake()

    def overload(self, generation: int) -> None:
        """A call granted at ``generation`` was rate limited: halve, once per generation."""
        if generation >= self.generation:
            self.limit = max(float(self.minimum), self.limit / 2)
            self.generation += 1


class TokenBucket:
    """``rate`` units per second with a burst of ``capacity``. ``take`` waits for units;
    ``charge`` spends units after the fact (the level may go negative: later takers wait).

    >>> bucket = TokenBucket(rate=600 / 60)            # 600 requests per minute
    >>> asyncio.run(bucket.take(1))
    """

    def __init__(self, rate: float, capacity: float | None = None,
                 clock: object = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"A rate limit must be positive, got {rate!r}.")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, self.rate))
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()  # type: ignore[operator]
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = self._clock()  # type: ignore[operator]
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` units are available (0: until the level is not negative)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # first come, first served
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def charge(self, amount: float) -> None:
        """Spend ``amount`` units now (tokens known only after a call)."""
        self._refill()
        self.level -= amount
