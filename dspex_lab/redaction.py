"""Secrets out of everything dspex_lab stores or shows: one ``redact`` for all of it.

Masked with ``***``: values under key-like names (``api_key``, ``Authorization``, ``token``...),
text that looks like a key (``sk-...``, ``Bearer ...``), and every *known* secret wherever it
appears: the ``api_key`` (and other key-like settings) of each LM dspex_lab builds or is
given (``remember`` is called by ``LMSpec``), and the values of provider environment
variables that are set (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``*_TOKEN``...). A provider
that echoes the key in a 401 body thus never puts it into the ``error`` column, an exception
message, a spill file, the cache, the history or telemetry.

    >>> remember({"api_key": "my-own-secret-42"})
    >>> redact_text("401: key my-own-secret-42 is not valid")
    '401: key *** is not valid'
    >>> redact({"api_key": "abc", "model": "openai/gpt-4o-mini"})
    {'api_key': '***', 'model': 'openai/gpt-4o-mini'}

Known secrets shorter than ``MIN_SECRET_LENGTH`` characters are not masked in free text (a
test's ``api_key="x"`` must not turn every ``x`` into ``***``); under a key-like name they
always are.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "is_secret_key",
    "redact",
    "redact_exception",
    "redact_text",
    "remember",
    "secret_pattern",
]

MASK = "***"
MIN_SECRET_LENGTH = 8
_SECRET_KEYS = re.compile(
    r"(api[_-]?key|authorization|secret|password|credential|(^|_)token$|access[_-]?token)", re.I)
_SECRET_VALUES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_.\-]{8,})")

_lock = threading.Lock()
_remembered: set[str] = set()
_env_size = -1
_env_names: tuple[str, ...] = ()    # the environment's key-like variable names
_from_env: frozenset[str] = frozenset()
_known: tuple[str, ...] = ()       # longest first, so that a secret inside another goes too


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for names that hold secrets: ``api_key``, ``Authorization``, ``OPENAI_API_KEY``..."""
    return bool(_SECRET_KEYS.search(key))


def remember(values: Mapping[str, Any] | Iterable[Any] | None) -> None:
    """Mask these secrets from now on: a mapping's values under key-like names (an LM's
    keyword arguments), or every string of an iterable."""
    if values is None:
        return
    if isinstance(values, Mapping):
        found = {v for k, v in values.items() if isinstance(v, str) and is_secret_key(str(k))}
    else:
        found = {v for v in values if isinstance(v, str)}
    found = {v for v in found if len(v) >= MIN_SECRET_LENGTH}
    with _lock:
        new = found - _remembered
        _remembered.update(new)
    if new:
        _refresh(force=True)


def _refresh(force: bool = False) -> tuple[str, ...]:
    """The known secrets. The environment's key-like names are listed again when the number
    of variables changes, and their values are read every time (a few dict lookups)."""
    global _env_size, _env_names, _from_env, _known
    if len(os.environ) != _env_size:
        _env_size = len(os.environ)
        _env_names = tuple(k for k in list(os.environ) if is_secret_key(k))
    env = frozenset(v for k in _env_names
                    if len(v := os.environ.get(k, "")) >= MIN_SECRET_LENGTH)
    if force or env != _from_env:
        with _lock:
            _from_env = env
            _known = tuple(sorted(_remembered | env, key=len, reverse=True))
    return _known


def redact_text(text: str) -> str:
    """``text`` with every known secret and anything that looks like a key masked."""
    if "sk-" in text or "Bearer" in text:
        text = _SECRET_VALUES.sub(MASK, text)
    for secret in _refresh():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(value: Any, key: str = "") -> Any:
    """Hide secrets: values under key-like names, and secrets in strings (``redact_text``);
    dicts, lists and tuples are redacted item by item."""
    if key and is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(redact(v) for v in value)
    return value


def secret_pattern() -> str:
    """A regular expression (RE2-compatible) matching what ``redact_text`` masks, for
    vectorised masking of Arrow string columns."""
    known = "|".join(re.escape(s) for s in _refresh())
    return _SECRET_VALUES.pattern + (f"|{known}" if known else "")


def redact_exception(exc: BaseException) -> BaseException:
    """Mask secrets in ``exc``'s message (``args`` and a ``message`` attribute) and in those of
    its causes and contexts, in place, so that its traceback shows none; returns ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        try:
            current.args = tuple(redact(a) for a in current.args)
            if isinstance(getattr(current, "message", None), str):
                current.message = redact_text(current.message)  # type: ignore[attr-defined]
        except (AttributeError, TypeError):   # a read-only attribute: leave it
            pass
        current = current.__cause__ or current.__context__
    return exc
