"""Signatures: DSPy's ``"inputs -> outputs"`` text as frozen, validated, fast values.

>>> from dspex_lab.signatures import signature
>>> sig = signature("question, context: list[str] -> answer: str 'short', confidence: float")
>>> sig.input_names, sig.output_names
(('question', 'context'), ('answer', 'confidence'))
>>> sig.validate_outputs({"answer": "Paris", "confidence": 1})
{'answer': 'Paris', 'confidence': 1.0}

``signature(text)`` is cached by ``(text, instructions)``; ``sig.to_dspy()`` builds the
``dspy.Signature`` class only when DSPy needs it. Modules: ``parse`` (the pure parser),
``spec`` (the values), ``to_dspy`` (the only dspy conversion point), ``validate``, ``schema``,
``render``, ``known`` (the known type names), ``resolve`` (custom type names, found in the
caller's scope like ``dspy.Signature`` finds them).
"""

from __future__ import annotations

import contextlib
from typing import Any

from dspex_lab.signatures.parse import parse_signature, parse_type
from dspex_lab.signatures.parse import parse_with_names as _parse_with_names
from dspex_lab.signatures.resolve import lookup as _lookup
from dspex_lab.signatures.spec import Field, Signature, TypeSpec

__all__ = ["Field", "Signature", "TypeSpec", "parse_signature", "parse_type", "signature"]

_CACHE: dict[Any, Signature] = {}
_CACHE_MAX = 4096


def signature(text: str | Signature | type, instructions: str | None = None) -> Signature:
    """The ``Signature`` for ``text``, parsed once and then served from a cache.

    ``text`` may also be a ``Signature`` (returned as is) or a ``dspy.Signature`` subclass
    (converted with ``Signature.from_dspy``); ``instructions`` then replaces theirs.
    Custom type names (``"q: MyModel -> a"``) are resolved from the caller's scope as
    ``dspy.Signature`` does; a cached entry is reused only while they still name the same objects
    (a class redefined in a notebook cell gives a new Signature).
    Bad text raises ``SignatureError`` with a caret under the problem.

    >>> signature("question -> answer") is signature("question -> answer")
    True
    """
    key = text if instructions is None else (text, instructions)
    try:
        hit = _CACHE[key]
    except (KeyError, TypeError):
        hit = None
    if hit is not None:
        if type(hit) is Signature:
            return hit
        if _same_objects(hit[1]):
            return hit[0]
    if isinstance(text, Signature):
        return text if instructions is None else text.with_instructions(instructions)
    if isinstance(text, type):
        sig = Signature.from_dspy(text)
        return sig if instructions is None else sig.with_instructions(instructions)
    sig, names = _parse_with_names(text, instructions)
    if len(_CACHE) >= _CACHE_MAX:
        # drop the oldest entry (another thread may have got there first)
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):
            del _CACHE[next(iter(_CACHE))]
    _CACHE[key] = (sig, names) if names else sig
    return sig


def _same_objects(names: dict[str, Any]) -> bool:
    """True when every custom name still resolves, from the caller, to the cached object."""
    for name, obj in names.items():
        try:
            if _lookup(name)[0] is not obj:
                return False
        except Exception:
            return False
    return True
