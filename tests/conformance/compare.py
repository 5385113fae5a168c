"""Equal values AND equal Python types, recursively, with a message that says where.

    >>> differences({"a": [1, 2.0]}, {"a": [1, 2]})
    ['value.a[1]: float 2.0 != int 2']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["assert_same", "differences", "prediction_fields"]

_MAX = 80


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX else text[:_MAX - 3] + "..."


def prediction_fields(value: Any) -> dict[str, Any]:
    """A ``dspy.Prediction``'s fields as a dict; any other value as ``{"<value>": value}``."""
    import dspy

    if isinstance(value, dspy.Prediction):
        return dict(value.items())
    return {"<value>": value}


def _completions(prediction: Any) -> list[dict[str, Any]]:
    """A Prediction's completions as dicts (``dspy.Predict(sig, n=3)``); [] for one."""
    completions = prediction.completions
    if completions is None or len(completions) < 2:
        return []
    return [dict(completions[i].items()) for i in range(len(completions))]


def differences(expected: Any, got: Any, path: str = "value") -> list[str]:
    """Every place where ``got`` differs from ``expected`` in value or in type."""
    import dspy
    from pydantic import BaseModel

    if type(expected) is not type(got):
        return [f"{path}: {type(expected).__name__} {_show(expected)} != "
                f"{type(got).__name__} {_show(got)}"]
    if isinstance(expected, BaseModel):
        return differences({k: getattr(expected, k) for k in type(expected).model_fields},
                           {k: getattr(got, k) for k in type(got).model_fields}, path)
    if isinstance(expected, dspy.Prediction):
        return (differences(dict(expected.items()), dict(got.items()), path)
                + differences(_completions(expected), _completions(got), f"{path}.completions"))
    if isinstance(expected, dspy.History):
        return differences(expected.messages, got.messages, f"{path}.messages")
    if isinstance(expected, dspy.Image):
        return differences(expected.url, got.url, f"{path}.url")
    if isinstance(expected, Mapping):
        out = []
        if list(expected) != list(got):
            out.append(f"{path}: keys {list(expected)} != {list(got)}")
        for key in expected:
            if key in got:
                out += differences(expected[key], got[key], f"{path}.{key}")
        return out
    if isinstance(expected, list | tuple):
        if len(expected) != len(got):
            return [f"{path}: {len(expected)} items {_show(expected)} != {len(got)} items "
                    f"{_show(got)}"]
        out = []
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    if isinstance(expected, float) and math.isnan(expected) and math.isnan(got):
        return []
    if expected != got:
        return [f"{path}: {_show(expected)} != {_show(got)}"]
    return []


def assert_same(expected: Any, got: Any, where: str = "value") -> None:
    """Fail with every difference (value or type) between ``expected`` and ``got``."""
    problems = differences(expected, got, where)
    assert not problems, "dspex_lab differs from plain DSPy:\n  " + "\n  ".join(problems)
