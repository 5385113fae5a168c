"""The server's run-time options and the faults and delays they cause.

Faults come from two places:

* ``error_rate`` with ``error_kinds``: the k-th time a prompt is seen, it fails when
  ``stable_hash(seed, prompt, k)`` falls under the rate. Retries of a prompt therefore get
  fresh draws, and the same sequence of requests always fails the same way.
* markers in the prompt text: ``[[fail:429]]`` (always), ``[[fail:once:500]]`` (the first
  time that exact prompt is seen), ``[[fail:2:timeout]]`` (the first two times), and
  ``[[latency:250]]`` (this prompt takes 250 ms).

Kinds: ``429`` (with a ``Retry-After`` header of ``retry_after_s``), ``500``, ``timeout``
(hang ``hang_s`` seconds, longer than any sane client timeout, then drop the connection),
``drop`` (close the connection without a response), and malformed replies as broken
providers and proxies send them: ``badjson`` (a 200 whose body is not JSON), ``badutf8`` (a
200 whose JSON body holds invalid UTF-8), ``truncated`` (a 200 that announces more bytes than
it sends, then closes) and ``html`` (a 500 with an HTML error page).

A real rate limit, as providers enforce it: ``request_limit`` requests per ``limit_window_s``
seconds (a token bucket: that many at once, refilled evenly). Over it a request gets a 429
with ``Retry-After``; every reply carries OpenAI's ``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests`` headers unless
``ratelimit_headers`` is False.

    >>> opts = ServerOptions().with_changes(error_rate=0.5, error_kinds=["500"])
    >>> opts.error_kinds
    ('500',)
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.lm_server.answers import Rule, load_rules
from dspex_lab.lm_server.solvers import stable_hash

__all__ = ["ERROR_KINDS", "MALFORMED_KINDS", "Fault", "ServerOptions", "decide_fault",
           "delay_seconds"]

ERROR_KINDS = ("429", "500", "timeout", "drop", "badjson", "badutf8", "truncated", "html")
MALFORMED_KINDS = ("badjson", "badutf8", "truncated", "html")
_FAIL_MARKER = re.compile(rf"\[\[fail:(?:(once|\d+):)?({'|'.join(ERROR_KINDS)})\]\]")
_LATENCY_MARKER = re.compile(r"\[\[latency:(\d+(?:\.\d+)?)\]\]")


@dataclass(frozen=True)
class ServerOptions:
    """Everything that changes how the server answers; ``with_changes`` validates."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ("429", "500")
    seed: int = 0
    retry_after_s: float = 1.0
    hang_s: float = 60.0
    stream_chunk_ms: float = 0.0
    responder: Any = None
    rules: tuple[Rule, ...] = ()
    request_limit: int = 0  # requests per limit_window_s; 0: no limit
    limit_window_s: float = 60.0
    ratelimit_headers: bool = True

    def with_changes(self, **changes: Any) -> ServerOptions:
        """A validated copy with ``changes`` applied."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigurationError(
                f"Unknown LM server option {unknown[0]!r}; valid options are "
                f"{', '.join(sorted(names))}.")
        clean = {k: _VALIDATORS.get(k, _identity)(k, v) for k, v in changes.items()}
        return replace(self, **clean)

    def public(self) -> dict[str, Any]:
        """The options as JSON-safe data (the responder by name)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["error_kinds"] = list(self.error_kinds)
        data["rules"] = [r.to_dict() for r in self.rules]
        responder = self.responder
        data["responder"] = None if responder is None else (
            responder if isinstance(responder, str) else getattr(responder, "__qualname__",
                                                                 repr(responder)))
        return data

    def responder_callable(self) -> Callable[..., Any] | None:
        """The responder as a callable (an import string is imported), or None."""
        return resolve_responder(self.responder)


def resolve_responder(responder: Any) -> Callable[..., Any] | None:
    """A callable from a callable or a ``"module:function"`` string."""
    if responder is None or callable(responder):
        return responder
    module, _, attr = str(responder).partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            f"Cannot import the responder {responder!r} ({exc}); pass a callable or a "
            "'module:function' string that is importable.") from exc
    if not callable(target):
        raise ConfigurationError(f"The responder {responder!r} is not callable.")
    return target


def _identity(_: str, value: Any) -> Any:
    return value


def _non_negative(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0:
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}.")
    return number


def _rate(name: str, value: Any) -> float:
    number = _non_negative(name, value)
    if number > 1:
        raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}.")
    return number


def _kinds(name: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str | int) else list(value)
    kinds = tuple(str(k).strip() for k in items)
    bad = [k for k in kinds if k not in ERROR_KINDS]
    if bad or not kinds:
        raise ConfigurationError(
            f"{name} must list some of {', '.join(ERROR_KINDS)}; got {value!r}.")
    return kinds


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a whole number >= 0, got {value!r}.")
    return value


def _positive(name: str, value: Any) -> float:
    number = _non_negative(name, value)
    if number == 0:
        raise ConfigurationError(f"{name} must be a number > 0, got {value!r}.")
    return number


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}.")
    return value


def _seed(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name} must be an integer, got {value!r}.") from exc


def _rules(_: str, value: Any) -> tuple[Rule, ...]:
    try:
        return load_rules(value)
    except (OSError, ValueError, re.error) as exc:
        raise ConfigurationError(f"Cannot load the rules {value!r}: {exc}") from exc


def _responder(_: str, value: Any) -> Any:
    if value is not None and not callable(value) and not isinstance(value, str):
        raise ConfigurationError(
            f"responder must be a callable or a 'module:function' string, got {value!r}.")
    return value


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative, "jitter_ms": _non_negative, "error_rate": _rate,
    "error_kinds": _kinds, "seed": _seed, "retry_after_s": _non_negative,
    "hang_s": _non_negative, "stream_chunk_ms": _non_negative, "rules": _rules,
    "responder": _responder, "request_limit": _count, "limit_window_s": _positive,
    "ratelimit_headers": _flag,
}


@dataclass(frozen=True)
class Fault:
    """An injected failure: ``kind`` is one of ``ERROR_KINDS``; ``source`` says why."""

    kind: str
    source: str  # "marker" or "rate"


def decide_fault(options: ServerOptions, key: str, text: str, attempt: int) -> Fault | None:
    """The fault for the ``attempt``-th time (0-based) this prompt is seen, if any."""
    marker = _FAIL_MARKER.search(text)
    if marker:
        count, kind = marker.groups()
        limit = None if count is None else (1 if count == "once" else int(count))
        if limit is None or attempt < limit:
            return Fault(kind, "marker")
        return None
    if options.error_rate <= 0:
        return None
    draw = stable_hash(options.seed, key, attempt, "error") / 2**64
    if draw >= options.error_rate:
        return None
    kinds: Sequence[str] = options.error_kinds
    pick = stable_hash(options.seed, key, attempt, "kind") % len(kinds)
    return Fault(kinds[pick], "rate")


def delay_seconds(options: ServerOptions, key: str, text: str) -> float:
    """Latency for this prompt: ``latency_ms`` plus a deterministic share of ``jitter_ms``
    (uniform in ``[0, jitter_ms]`` over prompts), or the ``[[latency:ms]]`` marker."""
    marker = _LATENCY_MARKER.search(text)
    if marker:
        return float(marker.group(1)) / 1000.0
    jitter = 0.0
    if options.jitter_ms > 0:
        jitter = options.jitter_ms * (stable_hash(options.seed, key, "jitter") / 2**64)
    return (options.latency_ms + jitter) / 1000.0
