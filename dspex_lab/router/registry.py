"""The open registry of operations and their implementations."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.errors import RoutingError

IMPLEMENTATIONS = ("native", "pool")
"""Implementation kinds one registers; ``distributed`` reuses the ``pool`` implementation."""


@dataclass
class Operation:
    """One operation: its implementations and how the router chooses between them.

    ``can_handle(*args, **kwargs) -> bool`` tells whether the native implementation copes with
    this call; when it says no, the call falls back to the pool. ``pool`` names the worker pool.
    """

    name: str
    implementations: dict[str, Callable[..., Any]] = field(default_factory=dict)
    can_handle: Callable[..., bool] | None = None
    pool: str = "general"
    prefer: str = "native"
    doc: str = ""


class Registry:
    """Maps operation names to ``Operation``s. Thread-safe; users may add their own."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self._lock = threading.Lock()

    def register(self, name: str, implementation: str, fn: Callable[..., Any], *,
                 can_handle: Callable[..., bool] | None = None, pool: str | None = None,
                 prefer: str | None = None, doc: str = "") -> Operation:
        """Register ``fn`` as the ``implementation`` ("native" or "pool") of operation ``name``."""
        if implementation not in IMPLEMENTATIONS:
            raise RoutingError(
                f"Unknown implementation {implementation!r} for operation {name!r}; "
                f"use one of {', '.join(IMPLEMENTATIONS)}."
            )
        with self._lock:
            op = self._ops.get(name) or Operation(name)
            op.implementations[implementation] = fn
            if can_handle is not None:
                op.can_handle = can_handle
            if pool is not None:
                op.pool = pool
            if prefer is not None:
                op.prefer = prefer
            if doc:
                op.doc = doc
            self._ops[name] = op
            return op

    def get(self, name: str) -> Operation:
        """The operation called ``name``; ``RoutingError`` listing the known ones if none."""
        try:
            return self._ops[name]
        except KeyError:
            known = ", ".join(sorted(self._ops)) or "(none)"
            raise RoutingError(
                f"Unknown operation {name!r}. Registered operations: {known}. "
                "Register your own with dspex_lab.router.register(name, implementation, fn)."
            ) from None

    def names(self) -> list[str]:
        """The registered operation names, sorted."""
        return sorted(self._ops)

    def __contains__(self, name: str) -> bool:
        return name in self._ops
