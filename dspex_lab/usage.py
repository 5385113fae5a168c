"""Token usage and cost, from litellm's local cost map (never from the network)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

EMBEDDED_PRICE_PER_TOKEN = (0.15e-6, 0.60e-6)
"""The embedded LM is priced like a small hosted model (USD per prompt / completion token),
so that cost columns, budgets and dashboards show realistic numbers offline."""


@lru_cache(maxsize=256)
def _price(model: str) -> tuple[float, float] | None:
    if "dspex-embedded" in model:
        return EMBEDDED_PRICE_PER_TOKEN
    try:
        import litellm

        prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=1_000_000,
                                                    completion_tokens=1_000_000)
        return prompt / 1e6, completion / 1e6
    except Exception:  # an unpriced model costs 0 rather than failing the call
        return None


def cost_of(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD cost of one call; 0.0 for models litellm has no price for.

    >>> round(cost_of("openai/gpt-4o-mini", 1000, 100), 6)
    0.00021
    """
    price = _price(model)
    if price is None:
        return 0.0
    return prompt_tokens * price[0] + completion_tokens * price[1]


def usage_totals(by_model: dict[str, dict[str, Any]]) -> tuple[int, int, float]:
    """Sum a ``dspy.track_usage`` result into ``(prompt_tokens, completion_tokens, cost)``."""
    prompt = completion = 0
    cost = 0.0
    for model, usage in by_model.items():
        p = int(usage.get("prompt_tokens") or 0)
        c = int(usage.get("completion_tokens") or 0)
        prompt += p
        completion += c
        cost += cost_of(model, p, c)
    return prompt, completion, cost
