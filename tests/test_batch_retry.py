"""Retry policy, failure classification and the circuit breaker."""

import random

import pytest
from dspy.utils import exceptions as dx

from dspex_lab.batch.retry import BreakerConfig, CircuitBreaker, RetryPolicy, classify
from dspex_lab.errors import CircuitOpen, LMError


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap():
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0)]:
        waits = [policy.backoff(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jitter spreads over the whole range


def test_retry_after_wins_and_is_capped():
    policy = RetryPolicy(max_retry_after=10)
    assert policy.backoff(5, retry_after=1.5) == 1.5
    assert policy.backoff(0, retry_after=3600) == 10


def test_negative_settings_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="non-negative"):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize("exc, retryable, rate_limited, lm_down", [
    (dx.LMRateLimitError("slow down", status=429, retry_after=2.0), True, True, False),
    (dx.LMServerError("boom", status=500), True, False, True),
    (dx.LMTimeoutError("late"), True, False, True),
    (dx.LMTransportError("reset"), True, False, True),
    (dx.LMAuthError("no", status=401), False, False, False),
    (dx.LMInvalidRequestError("bad", status=400), False, False, False),
    (LMError("upstream 503", status=503, retryable=True), True, False, True),
    (LMError("no retry wanted", status=503), False, False, False),
    (LMError("replay miss", retryable=False), False, False, False),
    (TimeoutError("t"), True, False, True),
    (ConnectionResetError("c"), True, False, True),
    (ValueError("parse"), False, False, False),
    (CircuitOpen("open", status=503, retryable=True), False, False, False),
])
def test_classify(exc, retryable, rate_limited, lm_down):
    failure = classify(exc)
    assert (failure.retryable, failure.rate_limited, failure.lm_down) == (
        retryable, rate_limited, lm_down)


def test_classify_reads_retry_after_and_status():
    failure = classify(dx.LMRateLimitError("x", status=429, retry_after=1.25))
    assert failure.status == 429 and failure.retry_after == 1.25


def test_breaker_needs_both_enough_failures_and_enough_time():
    now = [0.0]
    breaker = CircuitBreaker(BreakerConfig(failures=3, seconds=5, trials=0),
                             clock=lambda: now[0])
    for _ in range(3):
        breaker.record(ok=False, error="LMServerError: 500")
    assert not breaker.open  # three failures, but within the grace time
    now[0] = 6.0
    breaker.record(ok=False)
    assert breaker.open and breaker.state == "tripped"  # trials=0: no second chance
    assert "4 times in a row" in breaker.message() and "500" in breaker.message()


def admit(breaker):
    import asyncio

    return asyncio.run(breaker.admit(poll=0.001))


def test_half_open_lets_one_trial_through_after_the_cooldown_and_closes_on_success():
    import asyncio

    now = [0.0]
    breaker = CircuitBreaker(BreakerConfig(failures=2, seconds=0, cooldown=0.05, trials=2),
                             clock=lambda: now[0])
    breaker.record(ok=False)
    breaker.record(ok=False)
    assert breaker.state == "open" and not breaker.open  # paused, not given up

    async def two_callers():
        callers = [asyncio.ensure_future(breaker.admit(poll=0.001)) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert not any(c.done() for c in callers)  # both wait out the cooldown
        now[0] = 1.0
        done, waiting = await asyncio.wait(callers, timeout=5,
                                           return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.01)
        assert len(done) == 1 and len(waiting) == 1  # one trial at a time
        breaker.record(ok=True, trial=True)
        return [done.pop().result(), await asyncio.wait_for(waiting.pop(), 5)]

    assert asyncio.run(two_callers()) == ["trial", "go"]
    assert breaker.state == "closed" and breaker.recoveries == 1


def test_failed_trials_reopen_then_give_up():
    now = [0.0]
    breaker = CircuitBreaker(BreakerConfig(failures=1, seconds=0, cooldown=1.0, trials=2),
                             clock=lambda: now[0])
    breaker.record(ok=False, error="LMServerError: 503")
    now[0] = 1.5
    assert admit(breaker) == "trial"
    breaker.record(ok=False, trial=True)
    assert breaker.state == "open"  # one more try after another cooldown
    breaker.record(ok=False)  # a call from before the pause failing changes nothing
    now[0] = 3.0
    assert admit(breaker) == "trial"
    breaker.record(ok=False, trial=True)
    assert breaker.open and admit(breaker) is None
    assert "2 trial call(s)" in breaker.message()


def test_an_inconclusive_trial_pauses_again_instead_of_blocking_every_caller():
    now = [0.0]
    breaker = CircuitBreaker(BreakerConfig(failures=1, seconds=0, cooldown=1.0, trials=1),
                             clock=lambda: now[0])
    breaker.record(ok=False)
    now[0] = 1.5
    assert admit(breaker) == "trial"
    breaker.inconclusive()  # the trial was rate limited
    assert breaker.state == "open" and breaker.failed_trials == 0  # not counted as a failure
    now[0] = 3.0
    assert admit(breaker) == "trial"  # another trial after another cooldown


def test_breaker_config_is_checked():
    with pytest.raises(ValueError, match="trials"):
        BreakerConfig(trials=-1)


def test_a_success_resets_the_count_and_disabled_never_opens():
    breaker = CircuitBreaker(BreakerConfig(failures=2, seconds=0))
    breaker.record(ok=False)
    breaker.record(ok=True)
    breaker.record(ok=False)
    assert not breaker.open
    off = CircuitBreaker(BreakerConfig(failures=1, seconds=0, enabled=False))
    for _ in range(10):
        off.record(ok=False)
    assert not off.open
