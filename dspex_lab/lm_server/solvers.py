"""The embedded LM's little bit of knowledge: arithmetic, a lookup table, keywords, sentiment.

Everything is a pure function of the text, so answers are deterministic.

    >>> solve("What is 2 + 3?")
    5
    >>> solve("What is the capital of France?")
    'Paris'
    >>> arithmetic_expression("What is 6 times 7?")
    '6 * 7'
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

from dspex_lab.lm_server.literals import arithmetic

__all__ = ["HashRandom", "arithmetic_expression", "evaluate", "keywords", "numbers", "sentiment",
           "solve", "stable_hash"]

_WORD_OPS = [
    (r"\bmultiplied by\b", "*"), (r"\bdivided by\b", "/"), (r"\btimes\b", "*"),
    (r"\bplus\b", "+"), (r"\bminus\b", "-"), (r"\bover\b", "/"), ("×", "*"), ("÷", "/"),
    (r"(?<=\d)\s*x\s*(?=\d)", " * "),
]
_EXPR = re.compile(r"[\d.()+\-*/ ]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

_CAPITALS = {
    "france": "Paris", "germany": "Berlin", "italy": "Rome", "spain": "Madrid",
    "japan": "Tokyo", "china": "Beijing", "canada": "Ottawa", "australia": "Canberra",
    "united kingdom": "London", "the uk": "London", "england": "London",
    "united states": "Washington, D.C.", "the usa": "Washington, D.C.", "brazil": "Brasília",
    "india": "New Delhi", "portugal": "Lisbon", "netherlands": "Amsterdam", "egypt": "Cairo",
}
_FACTS = [
    (r"who (wrote|is the author of) (hamlet|romeo and juliet|macbeth)", "William Shakespeare"),
    (r"largest planet", "Jupiter"),
    (r"(chemical )?symbol for gold", "Au"),
    (r"(chemical )?(formula|symbol) (for|of) water", "H2O"),
    (r"colou?r of the (clear )?sky", "blue"),
    (r"tallest mountain", "Mount Everest"),
    (r"boiling point of water", "100 °C"),
    (r"how many days (are there )?in a week", 7),
    (r"how many continents", 7),
    (r"speed of light", "299,792,458 m/s"),
    (r"(who painted|painter of) the mona lisa", "Leonardo da Vinci"),
]
_POSITIVE = {"love", "great", "good", "excellent", "amazing", "happy", "wonderful", "best",
             "fantastic", "like", "enjoy", "enjoyed", "awesome", "nice", "perfect", "delightful"}
_NEGATIVE = {"hate", "bad", "terrible", "awful", "worst", "sad", "poor", "horrible", "boring",
             "broken", "disappointing", "disappointed", "angry", "useless", "never", "not"}
_STOPWORDS = frozenset("""
a an the is are was were be been of to in on at for and or but with what which who whom
whose how why when where does do did can could should would will shall may might this
that these those it its i you he she we they me my your our their please tell give about
from by as into than then there here if so not no yes just also any some all each more
most very
""".split())  # noqa: SIM905


def stable_hash(*parts: Any) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process (unlike ``hash``)."""
    data = "\x1f".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HashRandom:
    """Deterministic draws derived from ``stable_hash(*parts)``: a cheap stand-in for
    ``random.Random`` (no global state, no Mersenne-Twister seeding per field).

    >>> HashRandom("seed", 1).randint(1, 6) == HashRandom("seed", 1).randint(1, 6)
    True
    """

    def __init__(self, *parts: Any) -> None:
        self._base = stable_hash(*parts)
        self._count = 0

    def random(self) -> float:
        """The next float in [0, 1), from the seed and a counter."""
        self._count += 1
        return stable_hash(self._base, self._count) / 2**64

    def randrange(self, n: int) -> int:
        """An int in ``range(n)``."""
        return min(int(self.random() * n), n - 1)

    def randint(self, low: int, high: int) -> int:
        """An int in ``[low, high]``, both ends included."""
        return low + self.randrange(high - low + 1)

    def uniform(self, low: float, high: float) -> float:
        """A float in ``[low, high)``."""
        return low + (high - low) * self.random()


def evaluate(expression: str) -> int | float | None:
    """Evaluate ``+ - * / // %`` over numbers; None when it is not plain arithmetic.

    Parsed by ``literals.arithmetic``, not ``ast``: server threads call this concurrently."""
    try:
        value = arithmetic(expression)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return int(value) if value.is_integer() else round(value, 6)
    return value


@functools.lru_cache(maxsize=1024)
def arithmetic_expression(text: str) -> str | None:
    """The longest arithmetic expression in ``text`` (word operators become symbols)."""
    lowered = text.lower()
    for pattern, symbol in _WORD_OPS:
        lowered = re.sub(pattern, f" {symbol} ", lowered)
    best = None
    for m in _EXPR.finditer(lowered):
        candidate = " ".join(m.group(0).split()).strip(" .")
        if not re.search(r"\d\s*[-+*/]\s*[-(]?\s*\d", candidate):
            continue
        candidate = _balance(candidate)
        if evaluate(candidate) is not None and (best is None or len(candidate) > len(best)):
            best = candidate
    return best


def _balance(expr: str) -> str:
    """Drop unmatched parentheses at the edges (``(2 + 3`` from ``(2 + 3) something``)."""
    while expr.count("(") > expr.count(")") and expr.startswith("("):
        expr = expr[1:].strip()
    while expr.count(")") > expr.count("(") and expr.endswith(")"):
        expr = expr[:-1].strip()
    return expr


def lookup(text: str) -> str | int | None:
    """A fact from the small built-in table, or None."""
    lowered = text.lower()
    m = re.search(r"capital (city )?of ([a-z .]+)", lowered)
    if m:
        place = m.group(2).strip(" .?")
        for country, capital in _CAPITALS.items():
            if place == country or place.startswith(country):
                return capital
    for pattern, answer in _FACTS:
        if re.search(pattern, lowered):
            return answer
    return None


def solve(text: str) -> str | int | float | None:
    """Arithmetic first, then the lookup table; None when neither applies."""
    expr = arithmetic_expression(text)
    if expr is not None:
        return evaluate(expr)
    return lookup(text)


def numbers(text: str) -> list[int | float]:
    """The numbers in ``text``, in order."""
    out: list[int | float] = []
    for token in _NUMBER.findall(text):
        value = float(token)
        out.append(int(value) if value.is_integer() and "." not in token else value)
    return out


def keywords(text: str, limit: int = 5) -> list[str]:
    """Content words of ``text`` in order of appearance, without duplicates or stopwords."""
    seen: list[str] = []
    for word in re.findall(r"[A-Za-z][A-Za-z'\-]*", text):
        w = word.lower().strip("'-")
        if len(w) > 2 and w not in _STOPWORDS and w not in seen:
            seen.append(w)
        if len(seen) >= limit:
            break
    return seen


def sentiment(text: str) -> str | None:
    """``"positive"``, ``"negative"`` or None (no opinion words)."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    pos, neg = len(words & _POSITIVE), len(words & _NEGATIVE)
    if pos == neg:
        return None
    return "positive" if pos > neg else "negative"
