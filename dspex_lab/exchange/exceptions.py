"""Exceptions across processes: captured as plain data in a worker, rebuilt in the kernel.

    >>> try:
    ...     1 / 0
    ... except ZeroDivisionError as exc:
    ...     data = capture(exc)            # plain dict: type, message, traceback, pickled...
    >>> err = rebuild(data)                # RemoteError, __cause__ = the ZeroDivisionError
    >>> type(err).__name__, type(err.__cause__).__name__
    ('RemoteError', 'ZeroDivisionError')

As in loky, the worker's formatted traceback prints in the kernel: the rebuilt original's
``__cause__`` is a ``RemoteTraceback`` holding it. ``DspexError`` subclasses (ValidationError,
LMError...) are rebuilt as themselves so that callers can catch them by type; everything else
becomes a ``RemoteError`` whose ``__cause__`` is the original exception, or a stand-in of the
same name and message when the original could not be pickled or unpickled.
"""

from __future__ import annotations

import builtins
import os
import pickle
import sys
import traceback
from typing import Any

import cloudpickle

from dspex_lab.errors import DspexError, RemoteError

__all__ = ["RemoteTraceback", "capture", "rebuild"]


class RemoteTraceback(Exception):
    """A worker's formatted traceback, shown as the ``__cause__`` of the re-raised error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text.rstrip()}\n"""'


def capture(exc: BaseException) -> dict[str, Any]:
    """Plain data describing ``exc``: type, module, message, traceback, pid, pickled bytes."""
    cls = type(exc)
    try:
        text = str(exc)
    except Exception:
        text = f"<unprintable {cls.__name__}>"
    return {"type": cls.__qualname__, "module": cls.__module__, "message": text,
            "traceback": "".join(traceback.format_exception(exc)), "pid": os.getpid(),
            "pickled": _pickled(exc)}


def _pickled(exc: BaseException) -> bytes | None:
    try:
        data = cloudpickle.dumps(exc)
        pickle.loads(data)     # some exceptions pickle but cannot be rebuilt (custom __init__)
    except Exception:
        return None
    return data


def rebuild(data: dict[str, Any]) -> BaseException:
    """The exception to raise in the kernel for ``capture``'s data (see module docstring)."""
    qualname = str(data.get("type", "Exception"))
    module = str(data.get("module", "builtins"))
    text, tb = str(data.get("message", "")), str(data.get("traceback", ""))
    original = _unpickle(data.get("pickled")) or _reconstruct(module, qualname, text)
    original.__cause__ = RemoteTraceback(tb)
    remote_type = qualname if module == "builtins" else f"{module}.{qualname}"
    if isinstance(original, DspexError):
        original.remote_type, original.remote_traceback = remote_type, tb
        return original
    where = f"worker pid {data['pid']}" if data.get("pid") else "a worker"
    remote = RemoteError(f"{remote_type} raised in {where}: {text}",
                         remote_type=remote_type, remote_traceback=tb)
    remote.__cause__ = original
    return remote


def _unpickle(data: Any) -> BaseException | None:
    if not isinstance(data, bytes | bytearray):
        return None
    try:
        exc = pickle.loads(data)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


def _reconstruct(module: str, qualname: str, text: str) -> BaseException:
    """The original class when this process has it and it takes one message, else a stand-in."""
    cls: Any = builtins if module == "builtins" else sys.modules.get(module)
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(text)
        except Exception:
            pass
    stand_in = type(qualname.rsplit(".", 1)[-1], (Exception,),
                    {"__module__": module, "__qualname__": qualname})
    return stand_in(text)
