"""Splitting a ``%dspex`` line into its parts: ``[VAR <<] [SIGNATURE] [--options]``.

A signature contains ``->``, ``:`` and quoted descriptions, which argparse would take for
options, so the line is cut into raw tokens first (quotes kept): tokens starting with ``--``
(and the value after each option that takes one) go to the magic's argparse parser, the rest
is the signature text, exactly as written.

    >>> split_line('res << question -> answer: str "short" --module cot', parser)
    LineParts(target='res', signature='question -> answer: str "short"', argv=['--module', 'cot'])
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
from dataclasses import dataclass, field

from dspex_lab.errors import ConfigurationError

__all__ = ["LineParts", "split_line"]

_TOKEN = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"']|["'])+""")
_TARGET = re.compile(r"^\s*([A-Za-z_]\w*)\s*<<(?!<)\s*")
_OPTION = re.compile(r"^--?[A-Za-z]")


@dataclass(frozen=True)
class LineParts:
    """The parts of a magic line: the ``<<`` target, the signature text, the option argv."""

    target: str | None
    signature: str
    argv: list[str] = field(default_factory=list)


def _unquote(token: str) -> str:
    try:
        parts = shlex.split(token)
    except ValueError:
        return token
    return parts[0] if len(parts) == 1 else token


def _takes_value(parser: argparse.ArgumentParser, option: str) -> bool:
    action = parser._option_string_actions.get(option)
    return action is not None and action.nargs != 0


def _option_name(parser: argparse.ArgumentParser, option: str, magic: str) -> str:
    """The full name of ``option`` (exact, or a unique prefix such as ``--mod``)."""
    known = sorted(parser._option_string_actions)
    if option in known:
        return option
    prefixed = [k for k in known if k.startswith(option)] if option.startswith("--") else []
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise ConfigurationError(f"{magic} option {option} is ambiguous: it could be "
                                 f"{' or '.join(prefixed)}; write it in full.")
    close = difflib.get_close_matches(option, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else "."
    raise ConfigurationError(
        f"{magic} has no option {option}{hint} Run {magic}? to see every option.")


def split_line(line: str, parser: argparse.ArgumentParser, magic: str = "%%dspex"
               ) -> LineParts:
    """Cut ``line`` into target, signature and option argv; an unknown option raises
    ``ConfigurationError`` naming the closest known one."""
    target = None
    match = _TARGET.match(line)
    if match:
        target, line = match.group(1), line[match.end():]
    tokens = _TOKEN.findall(line)
    argv: list[str] = []
    words: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if _OPTION.match(token) and not token.startswith("->"):
            name, has_value, value = token.partition("=")
            option = _option_name(parser, name, magic)
            argv.append(f"{option}={_unquote(value)}" if has_value else option)
            if not has_value and _takes_value(parser, option) and i + 1 < len(tokens):
                argv.append(_unquote(tokens[i + 1]))
                i += 1
        else:
            words.append(token)
        i += 1
    return LineParts(target, " ".join(words), argv)
