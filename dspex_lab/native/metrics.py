"""Native metrics: ``exact_match``, token ``f1`` and ``accuracy``, computed in the kernel.

Each metric compares predictions with gold answers. A single prediction (a string or a number)
gives a float; a list, tuple, numpy array or pandas Series of predictions gives one score per
row (a Series keeps its index). A gold answer may be a list of acceptable answers: the best
match counts.

    >>> exact_match(" Paris ", "paris")
    1.0
    >>> f1("the Eiffel tower", ["Eiffel Tower", "tour Eiffel"])
    1.0
    >>> exact_match(["5", "6"], ["5", ["7", "8"]])
    [1.0, 0.0]
    >>> accuracy(["5", "6"], ["5", "7"])
    0.5

The same objects work as DSPy metrics (``metric(example, prediction, trace=None)``, and
GEPA's ``metric(gold, pred, trace, pred_name, pred_trace)``), e.g.
``dspy.Evaluate(devset=..., metric=exact_match)``, and on DataFrame columns
(``exact_match.frame(df, "answer", "gold")``). ``exact_match.on("answer")`` binds the field a
DSPy-style call compares when a program has several outputs.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Metric", "accuracy", "exact_match", "f1", "normalize_answer", "to_text"]

_PUNCT = re.compile(r"[^\w\s]|_")
_ASCII_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = frozenset(("a", "an", "the"))


def to_text(value: Any) -> str:
    """The text a metric compares: ``None``/NaN give ``""``, ``5.0`` gives ``"5"``."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)


def normalize_answer(text: Any) -> str:
    """SQuAD normalisation: lowercase, punctuation deleted, articles removed, spaces folded.

    As in the official SQuAD script (and DSPy's ``EM``/``F1``), punctuation is deleted, not
    replaced by a space; here that covers Unicode punctuation and symbols too. Text is put in
    NFC form first, so composed and decomposed accents compare equal.

    >>> normalize_answer("The  Eiffel Tower's!")
    'eiffel towers'
    """
    return " ".join(_tokens(text))


def _tokens(value: Any) -> list[str]:
    """The SQuAD tokens of a value (ASCII text takes a fast path with the same result)."""
    text = to_text(value)
    if text.isascii():
        text = text.lower().translate(_ASCII_PUNCT)
    else:
        text = _PUNCT.sub("", unicodedata.normalize("NFC", text).lower())
    return [t for t in text.split() if t not in _ARTICLES]


def _basic(value: Any, case_sensitive: bool) -> str:
    text = to_text(value)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    return text if case_sensitive else text.lower()


def _exact_one(pred: Any, gold: Any, case_sensitive: bool = False, squad: bool = False) -> float:
    if squad:
        p = _tokens(pred)
        return float(any(p == _tokens(g) for g in _golds(gold)))
    p = _basic(pred, case_sensitive)
    return float(any(p == _basic(g, case_sensitive) for g in _golds(gold)))


def _f1_one(pred: Any, gold: Any) -> float:
    pred_tokens = _tokens(pred)
    return max((_token_f1(pred_tokens, _tokens(g)) for g in _golds(gold)), default=0.0)


def _token_f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:  # SQuAD: both empty is a match, one empty is not
        return float(pred == gold)
    if len(pred) * len(gold) <= 64:  # short answers: a list scan beats two Counters
        rest, common = list(gold), 0
        for token in pred:
            if token in rest:
                rest.remove(token)
                common += 1
    else:
        common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _golds(gold: Any) -> Sequence[Any]:
    """Acceptable answers: a list/tuple/set/array of them, or one answer."""
    if isinstance(gold, (list, tuple, set, frozenset)):
        return list(gold)
    if hasattr(gold, "tolist") and not isinstance(gold, (str, bytes)):
        listed = gold.tolist()
        return listed if isinstance(listed, list) else [listed]
    return [gold]


def _is_vector(pred: Any) -> bool:
    """Lists, tuples, numpy arrays and pandas Series (not strings, not numpy scalars)."""
    if isinstance(pred, (str, bytes)):
        return False
    return isinstance(pred, (list, tuple)) or getattr(pred, "ndim", 0) == 1


def _vectorised(one: Callable[..., float], pred: Any, gold: Any, **options: Any) -> Any:
    """Apply ``one`` to a scalar pair, or row by row to sequences of equal length."""
    if not _is_vector(pred):
        return one(pred, gold, **options)
    preds = pred.tolist() if hasattr(pred, "tolist") else list(pred)
    golds = gold.tolist() if hasattr(gold, "tolist") and _is_vector(gold) else gold
    if isinstance(golds, (str, bytes)) or not isinstance(golds, (list, tuple)):
        raise ValueError(
            f"Got {len(preds)} predictions but a single gold value {gold!r}; pass one gold "
            "answer (or list of acceptable answers) per prediction."
        )
    if len(golds) != len(preds):
        raise ValueError(
            f"Got {len(preds)} predictions but {len(golds)} gold answers; they must pair up "
            "row by row."
        )
    scores = [one(p, g, **options) for p, g in zip(preds, golds, strict=True)]
    if hasattr(pred, "index") and hasattr(pred, "iloc"):  # a pandas Series
        import pandas as pd

        return pd.Series(scores, index=pred.index, dtype="float64")
    return scores


class Metric:
    """A native metric: ``metric(pred, gold)`` on values or columns, and a DSPy metric.

    Called with a ``dspy.Example`` and a prediction (``metric(example, pred, trace=None)``), it
    compares the output ``field`` (or every label field the prediction has, averaged).
    ``aggregate=True`` metrics (``accuracy``) return the mean over rows instead of one score
    per row; ``rows()`` always gives the per-row scores.

    >>> exact_match.on("answer", case_sensitive=True).field
    'answer'
    """

    def __init__(self, name: str, one: Callable[..., float], *, field: str | None = None,
                 aggregate: bool = False, **options: Any) -> None:
        self.name = name
        self._one = one
        self.field = field
        self.aggregate = aggregate
        self.options = options

    def __call__(self, pred: Any, gold: Any, trace: Any = None, pred_name: str | None = None,
                 pred_trace: Any = None, **options: Any) -> Any:
        if _is_example(pred):  # DSPy's call, GEPA's five-argument form included
            return self.dspy(pred, gold, trace)
        if self.aggregate:
            scores = self.rows(pred if _is_vector(pred) else [pred],
                               gold if _is_vector(pred) else [gold], **options)
            return sum(scores) / len(scores) if scores else math.nan
        return _vectorised(self._one, pred, gold, **{**self.options, **options})

    def rows(self, preds: Any, golds: Any, **options: Any) -> list[float]:
        """One score per row of two equally long sequences (lists, arrays, Series)."""
        scores = _vectorised(self._one, list(preds), golds, **{**self.options, **options})
        return list(scores)

    def on(self, field: str | None = None, **options: Any) -> Metric:
        """The same metric bound to an output ``field`` and/or with new default options."""
        return Metric(self.name, self._one, field=field or self.field,
                      aggregate=self.aggregate, **{**self.options, **options})

    def dspy(self, example: Any, prediction: Any, trace: Any = None) -> float:
        """The DSPy form: score ``prediction`` against the labels of ``example``."""
        fields = [self.field] if self.field else _label_fields(example, prediction)
        if not fields:
            raise ValueError(
                f"Metric {self.name} found no output field to compare: the example's labels "
                f"{sorted(_keys(example))} and the prediction's fields {sorted(_keys(prediction))}"
                f" share none. Use {self.name}.on('field_name')."
            )
        scores = [self._one(_get(prediction, f), _get(example, f), **self.options)
                  for f in fields]
        return sum(scores) / len(scores)

    def frame(self, df: Any, pred: str, gold: str) -> Any:
        """Score two DataFrame columns row by row (the mean, for an aggregate metric).

        >>> exact_match.frame(df, "answer", "gold_answer").mean()
        """
        return self(df[pred], df[gold])

    def __reduce__(self) -> tuple:  # picklable by reference to the module-level function
        return (_rebuild, (self.name, self._one, self.field, self.aggregate, self.options))

    def __repr__(self) -> str:
        bound = f" on {self.field!r}" if self.field else ""
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"<dspex_lab metric {self.name}{bound}{opts}>"


def _rebuild(name: str, one: Callable[..., float], field: str | None, aggregate: bool,
             options: dict[str, Any]) -> Metric:
    return Metric(name, one, field=field, aggregate=aggregate, **options)


def _is_example(obj: Any) -> bool:
    """True for a dspy.Example (it has ``inputs()`` and ``labels()``), without importing dspy."""
    return callable(getattr(obj, "labels", None)) and callable(getattr(obj, "inputs", None))


def _keys(obj: Any) -> list[str]:
    try:
        return list(obj.keys())
    except Exception:
        return []


def _get(obj: Any, name: str) -> Any:
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, name, None)


def _label_fields(example: Any, prediction: Any) -> list[str]:
    try:
        labels = list(example.labels().keys())
    except Exception:  # an Example without declared inputs: every key is a candidate
        labels = _keys(example)
    have = set(_keys(prediction))
    return [name for name in labels if name in have]


exact_match = Metric("exact_match", _exact_one)
"""1.0 when the prediction equals the gold answer (whitespace trimmed and folded, case ignored
unless ``case_sensitive=True``; ``squad=True`` also drops punctuation and articles)."""

f1 = Metric("f1", _f1_one)
"""SQuAD token F1 between prediction and gold (best over a list of acceptable answers)."""

accuracy = Metric("accuracy", _exact_one, aggregate=True)
"""The share of predictions that exactly match their gold answer (NaN when there are none);
per example (as a DSPy metric) it is ``exact_match``.

    >>> accuracy(["Paris", "Rome"], ["paris", "Madrid"])
    0.5
"""
