"""Fit a value (from a responder, a rule or a solver) to an output field's type.

``coerce(value, spec)`` returns the converted value, or ``FAIL`` when it does not fit; the
caller then generates a value of the right type instead.

    >>> from dspex_lab.lm_server.typespec import parse_annotation
    >>> coerce("7", parse_annotation("int")), coerce("YES", parse_annotation("bool"))
    (7, True)
    >>> coerce("maybe", parse_annotation("Literal['yes', 'no']")) is FAIL
    True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dspex_lab.lm_server import solvers
from dspex_lab.lm_server.typespec import TypeSpec

__all__ = ["FAIL", "coerce"]

FAIL: Any = object()
"""Returned by ``coerce`` when the value does not fit the type."""


def coerce(value: Any, spec: TypeSpec) -> Any:
    """``value`` converted to ``spec``, or ``FAIL`` when it does not fit."""
    kind = spec.kind
    try:
        if kind == "union":
            for member in spec.args:
                if member.kind != "none" and (result := coerce(value, member)) is not FAIL:
                    return result
            return None if value is None else FAIL
        if kind in ("any", "named", "ellipsis"):
            return value
        if kind == "str":
            return value if isinstance(value, str) else json.dumps(value, default=str) if (
                isinstance(value, dict | list)) else str(value)
        if kind in ("int", "float"):
            return _coerce_number(value, integer=kind == "int")
        if kind == "bool":
            return _coerce_bool(value)
        if kind == "literal":
            return _coerce_literal(value, spec.choices)
        if kind in ("list", "set", "tuple", "dict", "object"):
            return _coerce_container(value, spec)
    except (TypeError, ValueError):
        return FAIL
    return FAIL if value is not None or kind != "none" else None


def _coerce_number(value: Any, *, integer: bool) -> Any:
    if isinstance(value, bool):
        return FAIL
    if isinstance(value, str):
        nums = solvers.numbers(value.replace(",", ""))
        if len(nums) != 1:
            return FAIL
        value = nums[0]
    if not isinstance(value, int | float):
        return FAIL
    if integer:
        return int(value) if float(value).is_integer() else FAIL
    return float(value)


def _coerce_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    return FAIL


def _coerce_literal(value: Any, choices: Sequence[Any]) -> Any:
    if value in choices:
        return value
    for choice in choices:
        if str(choice).strip().lower() == str(value).strip().lower():
            return choice
    return FAIL


def _coerce_container(value: Any, spec: TypeSpec) -> Any:
    if isinstance(value, str):
        value = json.loads(value)
    if spec.kind == "object":
        if not isinstance(value, dict):
            return FAIL
        out = {}
        for name, t in spec.fields:
            item = coerce(value[name], t) if name in value else FAIL
            if item is FAIL:
                return FAIL
            out[name] = item
        return out
    if spec.kind == "dict":
        if not isinstance(value, dict):
            return FAIL
        value_type = spec.args[1] if len(spec.args) > 1 else TypeSpec("any")
        out = {k: coerce(v, value_type) for k, v in value.items()}
        return FAIL if any(v is FAIL for v in out.values()) else out
    if not isinstance(value, list | tuple | set):
        return FAIL
    item_type = spec.args[0] if spec.args and spec.kind != "tuple" else TypeSpec("any")
    items = [coerce(v, item_type) for v in value]
    return FAIL if any(v is FAIL for v in items) else items
