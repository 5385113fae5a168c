"""``VAR << %dspex ...``: the assignment form, rewritten to jupysql's ``%dspex VAR << ...``.

``VAR << %dspex ...`` is not valid Python, so IPython would reject it before any magic runs;
this input transformer (registered by ``%load_ext dspex_lab``, removed on unload) turns it
into the in-magic form that ``%dspex`` understands. A cell whose first line is
``VAR << %%dspex ...`` becomes ``%%dspex VAR << ...``. Other lines are left alone.

    >>> assign_transform(["res << %dspex question -> answer --df df\\n"])
    ['%dspex res << question -> answer --df df\\n']
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["assign_transform", "install", "uninstall"]

_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*)\s*<<\s*%(dspex)\b(.*)$", re.S)
_CELL = re.compile(r"^([A-Za-z_]\w*)\s*<<\s*%%(dspex)\b(.*)$", re.S)


def assign_transform(lines: list[str]) -> list[str]:
    """IPython cleanup transform: rewrite ``VAR << %dspex`` / ``VAR << %%dspex`` lines."""
    if not lines:
        return lines
    out = list(lines)
    first = next((i for i, line in enumerate(out) if line.strip()), None)
    if first is not None:
        match = _CELL.match(out[first])
        if match:
            out[first] = f"%%{match.group(2)} {match.group(1)} <<{match.group(3)}"
            return out
    for i, line in enumerate(out):
        match = _LINE.match(line)
        if match:
            indent, var, name, rest = match.groups()
            out[i] = f"{indent}%{name} {var} <<{rest}"
    return out


def install(shell: Any) -> None:
    """Add the transform to ``shell`` (once)."""
    transforms = shell.input_transformers_cleanup
    if assign_transform not in transforms:
        transforms.append(assign_transform)


def uninstall(shell: Any) -> None:
    """Remove the transform from ``shell``."""
    transforms = shell.input_transformers_cleanup
    while assign_transform in transforms:
        transforms.remove(assign_transform)
