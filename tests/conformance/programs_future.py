"""A notebook cell that starts with ``from __future__ import annotations``: every annotation
below is a string that DSPy (pydantic) resolves from this module's globals."""

from __future__ import annotations

from typing import Literal

import dspy
from pydantic import BaseModel


class Verdict(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    score: float


class Review(dspy.Signature):
    """Judge the review."""

    review: str = dspy.InputField()
    verdict: Verdict = dspy.OutputField()
    tags: list[str] = dspy.OutputField()


class Judge(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.judge = dspy.Predict(Review)

    def forward(self, review: str) -> dspy.Prediction:
        return self.judge(review=review)


REVIEWS = [
    {"review": "What a great and happy product, i love it"},
    {"review": "Terrible, awful, i hate it"},
    {"review": "It arrived on Tuesday."},
]
