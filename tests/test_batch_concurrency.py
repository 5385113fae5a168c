"""AIMD limits (kernel and worker) and token buckets."""

import asyncio
import time

import pytest

from dspex_lab.batch.concurrency import AIMDLimiter, SharedLimit, TokenBucket


def test_shared_limit_halves_once_per_generation_and_grows_back():
    limit = SharedLimit(total=32, slots=2, step=4)
    assert limit.share() == 16
    gen = limit.generation
    limit.feedback(rate_limited=5, generation=gen)
    limit.feedback(rate_limited=5, generation=gen)  # in flight before the decrease: ignored
    assert limit.total == 16 and limit.decreases == 1 and limit.share() == 8
    limit.feedback(rate_limited=1, generation=limit.generation)
    assert limit.total == 8
    for _ in range(20):
        limit.feedback(rate_limited=0, generation=limit.generation)
    assert limit.total == 32  # capped at the configured concurrency


def test_shared_limit_never_goes_below_one_per_chunk():
    limit = SharedLimit(total=4, slots=2)
    for _ in range(10):
        limit.feedback(rate_limited=1, generation=limit.generation)
    assert limit.total >= 1 and limit.share() == 1


def test_aimd_limiter_caps_calls_in_flight_and_halves_on_overload():
    limiter = AIMDLimiter(4)

    async def call(i):
        async with limiter.slot() as generation:
            await asyncio.sleep(0.01)
            if i == 0:
                limiter.overload(generation)
            else:
                limiter.success()

    async def main():
        await asyncio.gather(*(call(i) for i in range(40)))

    asyncio.run(main())
    assert limiter.peak == 4
    assert 1 <= limiter.limit <= 4
    assert limiter.generation == 1


def test_token_bucket_paces_requests():
    async def main():
        bucket = TokenBucket(rate=50, capacity=5)
        start = time.perf_counter()
        for _ in range(15):
            await bucket.take(1)
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    assert 0.15 <= elapsed < 1.0  # 5 from the burst, 10 more at 50/s


def test_token_bucket_charge_makes_later_takers_wait():
    async def main():
        bucket = TokenBucket(rate=100, capacity=10)
        bucket.charge(15)  # a call used more tokens than were left
        start = time.perf_counter()
        await bucket.take(0)
        return time.perf_counter() - start

    assert asyncio.run(main()) >= 0.04


def test_token_bucket_refuses_a_non_positive_rate():
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0)
