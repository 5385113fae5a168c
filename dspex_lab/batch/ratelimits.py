"""Rate-limit headers: read what the provider says is left, and slow down before a 429.

Providers report their limits on every reply: OpenAI (and vLLM, Azure, the embedded server)
with ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (reset as ``1s``, ``6m0s``,
``20ms``), Anthropic with ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``
(reset as an RFC 3339 time). ``RateLimitHint.from_headers`` reads either; a ``Pacer`` spaces
new calls by what the provider says remains and how fast it comes back, so a batch paces
itself at the provider's rate instead of hammering it into 429s.

    >>> hint = RateLimitHint.from_headers({"x-ratelimit-limit-requests": "60",
    ...                                    "x-ratelimit-remaining-requests": "2",
    ...                                    "x-ratelimit-reset-requests": "58s"})
    >>> pacer = Pacer(); pacer.observe(hint)
    >>> pacer.requests.rate                  # 58 requests come back in 58 s
    1.0

Where hints come from: with ``transport="fast"`` every reply's headers; with the default
``dspy.LM`` transport only failed calls carry them (DSPy keeps the headers of errors, not of
successes), so there the pacer acts from the first 429 on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dspex_lab.telemetry.bus import finite_number

__all__ = ["Pacer", "RateLimitHint", "hint_from_error", "parse_reset"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_MAX_HOLD_S = 60.0
_FORGET_S = 10.0


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a limit resets: ``"1.5"``, ``"20ms"``, ``"6m0s"``, ``"1h2m"`` or an
    RFC 3339 time (Anthropic); None when unreadable.

    >>> parse_reset("6m0s"), parse_reset("20ms"), parse_reset("0.5")
    (360.0, 0.02, 0.5)
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RateLimitHint:
    """What a reply said about the request and token limits (None: not said)."""

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None
                     ) -> RateLimitHint | None:
        """The hint in ``headers`` (any case; values may be lists), or None without one."""
        if not headers:
            return None
        items = headers.items() if isinstance(headers, Mapping) else headers
        flat: dict[str, str] = {}
        for name, value in items:
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            if value is not None:
                flat[str(name).lower().removeprefix("llm_provider-")] = str(value)
        fields: dict[str, float | None] = {}
        for unit in ("requests", "tokens"):
            for what in ("limit", "remaining", "reset"):
                raw = flat.get(f"x-ratelimit-{what}-{unit}",
                               flat.get(f"anthropic-ratelimit-{unit}-{what}"))
                fields[f"{what}_{unit}"] = (parse_reset(raw) if what == "reset"
                                            else finite_number(raw))
        if all(v is None for v in fields.values()):
            return None
        return cls(**fields)


def hint_from_error(exc: BaseException) -> RateLimitHint | None:
    """The rate-limit headers a failed call carried (DSPy's LM errors keep them in
    ``rate_limit_headers``; litellm's in ``response.headers``)."""
    hint = getattr(exc, "_dspex_hint", None)  # the fast transport read them already
    if isinstance(hint, RateLimitHint):
        return hint
    for source in (getattr(exc, "rate_limit_headers", None),
                   getattr(getattr(exc, "response", None), "headers", None)):
        hint = RateLimitHint.from_headers(source) if source else None
        if hint is not None:
            return hint
    return None


class _Window:
    """One limit as the provider reports it: what remains, refilled at the rate its reset
    time implies (``None`` until a hint taught it, and again once no hint came for
    ``_FORGET_S`` seconds or two reset periods: limits change, and DSPy's transport only
    reports them on errors)."""

    def __init__(self) -> None:
        self.rate: float | None = None  # units per second
        self.level = 0.0
        self.stamp = 0.0
        self.expires = 0.0

    def learn(self, limit: float | None, remaining: float | None, reset: float | None,
              parallel: int, now: float, pending: float = 0.0) -> None:
        if remaining is None:
            return
        if reset and limit and limit > remaining:
            self.rate = (limit - remaining) / reset / parallel
        elif reset and self.rate is None:
            self.rate = max(remaining, 1.0) / reset / parallel
        if self.rate is not None:
            self.level = remaining / parallel - pending
            self.stamp = now
            self.expires = now + max(_FORGET_S, 2 * (reset or 0.0))

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` is there (0: take it now)."""
        if self.rate is None:
            return 0.0
        if now > self.expires:
            self.rate = None
            return 0.0
        self.level += (now - self.stamp) * self.rate
        self.stamp = now
        if self.level >= amount - 1e-9:
            self.level -= amount
            return 0.0
        return min(_MAX_HOLD_S, max(1e-3, (amount - self.level) / self.rate))


class Pacer:
    """Paces the new calls of one chunk from the provider's own numbers (see the module
    docstring): once a hint came, each call waits for one request and its expected tokens
    from windows holding what the provider said remains, refilled at the rates its reset
    times imply, split over the ``parallel`` processes of the run. Before any hint, calls go
    straight through. Send each request inside ``async with pacer.request()`` (it waits for
    room; requests in flight count as spent), then ``observe`` its reply or error."""

    def __init__(self, parallel: int = 1, clock: Any = time.monotonic) -> None:
        self.parallel = max(1, parallel)
        self._clock = clock
        self.requests = _Window()
        self.tokens = _Window()
        self.tokens_per_call = 0.0  # a running mean of the replies' tokens
        self.outstanding = 0  # requests in flight (inside ``request()``)
        self._lock: asyncio.Lock | None = None

    def observe(self, hint: RateLimitHint | None, tokens: int = 0) -> None:
        """Take in one reply: its hint (None: nothing new) and the tokens it used."""
        if tokens:
            self.tokens_per_call = tokens if not self.tokens_per_call else (
                0.8 * self.tokens_per_call + 0.2 * tokens)
        if hint is None:
            return
        now = self._clock()
        self.requests.learn(hint.limit_requests, hint.remaining_requests, hint.reset_requests,
                            self.parallel, now, pending=self.outstanding)
        self.tokens.learn(hint.limit_tokens, hint.remaining_tokens, hint.reset_tokens,
                          self.parallel, now, pending=self.outstanding * self.tokens_per_call)

    @asynccontextmanager
    async def request(self) -> AsyncIterator[bool]:
        """One request's turn: wait for room, then count the request as in flight until the
        block ends (even when it is cancelled); yields whether it had to wait."""
        waited = await self.ready()
        self.outstanding += 1
        try:
            yield waited
        finally:
            self.outstanding -= 1

    async def ready(self) -> bool:
        """Wait for room for one more call (at once while no hint came); True if it waited."""
        if self.requests.rate is None and self.tokens.rate is None:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # first come, first served
            waited = False
            for window, amount in ((self.requests, 1.0), (self.tokens, self.tokens_per_call)):
                while (wait := window.wait_for(amount, self._clock())) > 0:
                    waited = True
                    await asyncio.sleep(wait)
            return waited
