"""Signature parsing speed vs ``dspy.Signature(text)``, measured in the same run.

Run: ``.venv/bin/python bench/bench_signatures.py`` (about 5-15 s). For each string it prints
the mean time of ``dspy.Signature(text)``, our uncached ``parse_signature(text)``, the cached
``signature(text)`` lookup and ``to_dspy()`` (uncached), then the ratios against the goals:
parse >= 10x faster than dspy, cached lookup < 1 us.
"""

from __future__ import annotations

import statistics
import time
import warnings

import dspy

from dspex_lab.signatures import parse_signature, signature
from dspex_lab.signatures.to_dspy import to_dspy

STRINGS = [
    "question -> answer",
    "question, context -> answer",
    "question: str, context: list[str] -> answer: str, confidence: float",
    "text -> label: Literal['positive', 'negative', 'neutral']",
    "record: dict[str, list[int | None]] -> total: int, notes: Optional[str]",
    "a: int, b: int -> total: int",
    "document -> summary, keywords: list[str], title",
    "pair: tuple[int, str], values: tuple[float, ...] -> mean: float",
    "x: Union[list[int], dict[str, int]] -> y: bool",
    "image: dspy.Image, question -> answer",
    "q -> a, b, c, d, e",
    "query, history: list[dict[str, str]], k: int -> results: list[str], scores: list[float]",
]


def mean_us(fn, text: str, loops: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` mean time of ``fn(text)`` over ``loops`` calls, in microseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn(text)
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    for text in STRINGS:
        sig = signature(text)
        rows.append((
            text,
            mean_us(dspy.Signature, text, 40),
            mean_us(parse_signature, text, 400),
            mean_us(signature, text, 50_000),
            mean_us(lambda _t, s=sig: to_dspy(s), text, 40),
        ))
    print(f"{'signature':<48} {'dspy us':>9} {'parse us':>9} {'cached us':>10} "
          f"{'to_dspy us':>11} {'dspy/parse':>11}")
    for text, d, p, c, t in rows:
        label = text if len(text) <= 48 else text[:45] + "..."
        print(f"{label:<48} {d:9.1f} {p:9.1f} {c:10.3f} {t:11.1f} {d / p:10.1f}x")
    dspy_mean = statistics.mean(r[1] for r in rows)
    parse_mean = statistics.mean(r[2] for r in rows)
    cached_max = max(r[3] for r in rows)
    worst = min(r[1] / r[2] for r in rows)
    print(f"\nmean: dspy.Signature {dspy_mean:.1f} us, parse {parse_mean:.1f} us "
          f"({dspy_mean / parse_mean:.1f}x faster, worst string {worst:.1f}x; goal >= 10x: "
          f"{'met' if worst >= 10 else 'NOT met'})")
    print(f"cached signature(text): at most {cached_max:.3f} us "
          f"(goal < 1 us: {'met' if cached_max < 1 else 'NOT met'})")
    print(f"to_dspy: mean {statistics.mean(r[4] for r in rows):.1f} us (lazy: paid only when "
          "DSPy runs, once per Signature)")


if __name__ == "__main__":
    main()
