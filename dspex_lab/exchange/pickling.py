"""cloudpickle, keeping where code came from: notebook code runs in a worker as it does here.

cloudpickle sends functions and classes defined in a notebook (or any ``__main__``) by value,
and renames the file of their code ``<dynamic-code>``. A traceback from that code then reads
differently in a worker than in the kernel, and that text can reach an LM: ``dspy.ReAct``
writes a failing tool's traceback into its next prompt. So the code travels with its file
name, and when that file cannot be read where it is unpickled (a notebook cell exists only
in the kernel's ``linecache``), with the cell's source lines, registered in the worker's
``linecache`` -- the worker's traceback is then the kernel's, line for line.

    >>> blob = dumps(notebook_function)
    >>> cloudpickle.loads(blob).__code__.co_filename      # not '<dynamic-code>'
    '/tmp/ipykernel_4242/1234567.py'
"""

from __future__ import annotations

import io
import linecache
import os
import types
from collections import ChainMap
from typing import Any, ClassVar

import cloudpickle

__all__ = ["Pickler", "dumps"]

_DYNAMIC = "<dynamic-code>"


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    rebuild, args = cloudpickle.cloudpickle._code_reduce(code)
    filename = code.co_filename
    args = tuple(filename if isinstance(a, str) and a == _DYNAMIC else a for a in args)
    lines = None if os.path.exists(filename) else linecache.getlines(filename) or None
    return _rebuild_code, (rebuild, args, filename, lines)


def _rebuild_code(rebuild: Any, args: tuple[Any, ...], filename: str,
                  lines: list[str] | None) -> types.CodeType:
    """The code object, with its source lines known to ``linecache`` (for tracebacks)."""
    if lines and filename not in linecache.cache and not os.path.exists(filename):
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return rebuild(*args)


class Pickler(cloudpickle.Pickler):
    """``cloudpickle.Pickler`` that keeps the file name (and a notebook cell's lines) of the
    code it pickles by value."""

    dispatch_table: ClassVar[ChainMap] = ChainMap({types.CodeType: _reduce_code},
                                                  cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any, protocol: int = 5, buffer_callback: Any = None) -> bytes:
    """``cloudpickle.dumps`` with code file names kept (see the module docstring)."""
    with io.BytesIO() as file:
        Pickler(file, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
        return file.getvalue()
