"""Rate-limit headers: parsing every provider's format, and the pacer that spaces calls."""

import asyncio

import pytest

from dspex_lab.batch.ratelimits import Pacer, RateLimitHint, hint_from_error, parse_reset


@pytest.mark.parametrize(("text", "seconds"), [
    ("1", 1.0), ("0.25", 0.25), ("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0),
    ("1h2m3s", 3723.0), ("1.5s", 1.5), (" 2 ", 2.0),
])
def test_reset_durations_in_every_format(text, seconds):
    assert parse_reset(text) == pytest.approx(seconds)


def test_reset_as_a_time_and_unreadable_values():
    assert parse_reset("2026-01-01T00:00:10Z", now=1767225600.0) == pytest.approx(10.0)
    assert parse_reset("2025-01-01T00:00:00Z", now=1767225600.0) == 0.0  # already past
    assert parse_reset("soon") is None and parse_reset(None) is None
    assert parse_reset("2026-01-01T00:00:10") is None  # no time zone: cannot tell


def test_openai_anthropic_and_litellm_headers():
    openai = RateLimitHint.from_headers({
        "X-RateLimit-Limit-Requests": "500", "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2s",
        "content-type": "application/json"})
    assert (openai.limit_requests, openai.remaining_requests) == (500, 499)
    assert openai.reset_requests == pytest.approx(0.12) and openai.reset_tokens == 2.0
    anthropic = RateLimitHint.from_headers([
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "7")])
    assert (anthropic.limit_requests, anthropic.remaining_requests) == (50, 7)
    litellm = RateLimitHint.from_headers({"llm_provider-x-ratelimit-remaining-requests": ["3"]})
    assert litellm.remaining_requests == 3
    assert RateLimitHint.from_headers({"content-type": "text/plain"}) is None
    assert RateLimitHint.from_headers(None) is None


def test_hints_travel_on_errors():
    error = RuntimeError("429")
    error.rate_limit_headers = {"x-ratelimit-remaining-requests": ("0",),  # as DSPy keeps them
                                "x-ratelimit-reset-requests": ("1s",)}
    assert hint_from_error(error).reset_requests == 1.0
    assert hint_from_error(ValueError("no headers")) is None


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def run(coro):
    return asyncio.run(coro)


def test_without_a_hint_calls_go_straight_through():
    pacer = Pacer()

    async def one_request():
        async with pacer.request() as waited:
            return waited, pacer.outstanding

    assert run(one_request()) == (False, 1)
    pacer.observe(None, tokens=10)
    assert pacer.outstanding == 0 and pacer.requests.rate is None


def test_a_cancelled_request_is_not_counted_as_in_flight():
    pacer = Pacer()

    async def cancelled():
        task = asyncio.ensure_future(asyncio.sleep(10))
        async with pacer.request():
            task.cancel()
            await task

    with pytest.raises(asyncio.CancelledError):
        run(cancelled())
    assert pacer.outstanding == 0


@pytest.fixture
def fake_time(monkeypatch):
    """A clock that ``asyncio.sleep`` moves forward at once; yields (clock, seconds slept)."""
    clock, slept = Clock(), []

    async def fake_sleep(seconds):
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return clock, slept


def test_calls_are_spaced_by_the_rate_the_reset_time_implies(fake_time):
    clock, slept = fake_time
    pacer = Pacer(clock=clock)
    pacer.observe(RateLimitHint(limit_requests=10, remaining_requests=2, reset_requests=0.8))
    assert pacer.requests.rate == pytest.approx(10.0)  # 8 requests come back in 0.8 s
    assert [run(pacer.ready()) for _ in range(3)] == [False, False, True]  # 2 left, then wait
    assert slept == [pytest.approx(0.1)]
    pacer.outstanding = 2  # two requests in flight, not counted by the provider yet
    pacer.observe(RateLimitHint(limit_requests=10, remaining_requests=3, reset_requests=0.7))
    assert pacer.requests.level == pytest.approx(3 - 2)


def test_split_over_processes_and_forgotten_without_news():
    clock = Clock()
    pacer = Pacer(parallel=4, clock=clock)
    pacer.observe(RateLimitHint(limit_requests=100, remaining_requests=20, reset_requests=8.0))
    assert pacer.requests.rate == pytest.approx(80 / 8 / 4) and pacer.requests.level == 5
    clock.now += 60  # no hint for a long time: limits may have changed
    assert run(pacer.ready()) is False and pacer.requests.rate is None


def test_a_token_limit_waits_for_the_tokens_a_call_uses(fake_time):
    clock, slept = fake_time
    pacer = Pacer(clock=clock)
    pacer.observe(RateLimitHint(limit_tokens=1000, remaining_tokens=150, reset_tokens=1.7),
                  tokens=100)
    assert run(pacer.ready()) is False  # 150 left, a call uses ~100
    assert run(pacer.ready()) is True and slept == [pytest.approx(50 / 500)]
