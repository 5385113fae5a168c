"""Lazy exports for package ``__init__`` modules: a name is imported on first use, then kept.

    >>> __getattr__, __dir__ = lazy_exports(__name__, {"run": "dspex_lab.batch"})

``exports`` maps a name to the module that defines it; ``submodules`` maps a name to a module
returned whole; ``public`` (default: all of them) is what ``dir()`` lists. Names not in
``public`` still resolve, so old spellings keep working without crowding the public face.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str], *,
                 submodules: Mapping[str, str] | None = None,
                 public: Iterable[str] | None = None
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module-level ``__getattr__`` and ``__dir__`` for ``package`` (PEP 562)."""
    subs = dict(submodules or {})
    listed = sorted(public) if public is not None else sorted([*exports, *subs])

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(sys.modules[package], name, value)  # found directly from now on
            return value
        if name in subs:
            return importlib.import_module(subs[name])
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(listed)

    return __getattr__, __dir__
