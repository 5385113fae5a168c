"""Programs kept by ``%%dspex ... --save NAME`` and reused by ``--with NAME``.

A saved program remembers its options too (LM, adapter, cache, concurrency); options given
with ``--with`` override them for that cell. ``--with`` also accepts a notebook variable that
holds a ``Program``, a ``Pipeline``, a ``dspy.Module`` or a signature.

    >>> save("qa", as_program("question -> answer", module="cot"), lm="fast")
    >>> lookup("qa", {}).program.kind
    'cot'
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dspex_lab.errors import ConfigurationError

__all__ = ["SavedProgram", "clear", "lookup", "names", "save"]

_LOCK = threading.Lock()
_SAVED: dict[str, SavedProgram] = {}


@dataclass(frozen=True)
class SavedProgram:
    """A program and the options it was saved with (None: not given)."""

    name: str
    program: Any
    lm: str | None = None
    adapter: str | None = None
    cache: bool | None = None
    concurrency: int | None = None

    def describe(self) -> str:
        """One line: the signature (or program) and its options."""
        sig = self.program.signature
        text = str(sig) if sig is not None else repr(self.program)
        extra = ", ".join(f"{k}={v!r}" for k, v in (("lm", self.lm), ("adapter", self.adapter))
                          if v)
        return f"{self.program.kind} {text}" + (f" ({extra})" if extra else "")


def save(name: str, program: Any, **options: Any) -> SavedProgram:
    """Keep ``program`` (a ``Program``) under ``name``; replaces an earlier one."""
    if not name.isidentifier():
        raise ConfigurationError(f"Cannot save a program as {name!r}: use a name such as "
                                 "'qa' or 'summarize_v2' (letters, digits, underscores).")
    saved = SavedProgram(name, program, **options)
    with _LOCK:
        _SAVED[name] = saved
    return saved


def lookup(name: str, namespace: Mapping[str, Any], module: str = "predict") -> SavedProgram:
    """The saved program ``name``, else the notebook variable ``name`` as a program."""
    with _LOCK:
        saved = _SAVED.get(name)
    if saved is not None:
        return saved
    if name in namespace:
        from dspex_lab.programs import as_program

        try:
            return SavedProgram(name, as_program(namespace[name], module=module))
        except TypeError as exc:
            raise ConfigurationError(f"--with {name}: {exc}") from None
    known = ", ".join(sorted(_SAVED)) or "none yet"
    raise ConfigurationError(
        f"There is no saved program or variable named {name!r} (saved: {known}); save one "
        f"with `%%dspex SIGNATURE --save {name}`.")


def names() -> list[str]:
    """The saved programs' names."""
    with _LOCK:
        return sorted(_SAVED)


def clear() -> None:
    """Forget every saved program."""
    with _LOCK:
        _SAVED.clear()
