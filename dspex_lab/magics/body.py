"""The body of a ``%%dspex`` cell: the inputs of the call.

Three forms, all plain text:

- one input: the whole body is its value (a paragraph, several lines)::

      %%dspex question -> answer
      What is the capital of France?

- several inputs: ``field: value`` lines; a value runs on over the following lines until the
  next line that starts with another input's name and a colon::

      %%dspex context, question -> answer
      context: Paris is the capital of France.
      question: What is the capital of France?

- YAML: values of typed inputs (``list[str]``, ``int``, ``dict``, ...) are read as YAML, and so
  are block scalars (``question: |``) and quoted strings; text inputs stay text as written
  (``answer: no`` is the string "no")::

      %%dspex docs: list[str], k: int -> summary
      docs:
        - first document
        - second document
      k: 2

``{name}`` inserts a notebook variable; ``{name.attr}``, ``{name[0]}`` and ``{name[key]}``
reach into it (the ``str.format`` field syntax: names, attributes and indexes only, nothing is
evaluated). A value that is exactly one ``{name}`` passes the object itself (a list stays a
list); ``{{`` and ``}}`` are literal braces; ``{name!r}`` inserts the repr.

    >>> sig = signature("context, question -> answer")
    >>> parse_body("context: {doc}\\nquestion: Who?", sig, {"doc": "Ada wrote it."})
    {'context': 'Ada wrote it.', 'question': 'Who?'}
"""

from __future__ import annotations

import re
import string
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from dspex_lab.errors import TemplateError, ValidationError

__all__ = ["interpolate", "parse_body", "parse_columns"]

_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]*\])*)(?:!([rsa]))?\}")
_KEY_LINE = re.compile(r"^([A-Za-z_]\w*)\s*:(?:\s|$)")
_FORMATTER = string.Formatter()
_TEXT_TYPES = ("str", "str | None")


def _lookup(path: str, namespace: Mapping[str, Any]) -> Any:
    try:
        value, _ = _FORMATTER.get_field(path, (), namespace)
    except KeyError as exc:
        name = re.match(r"[A-Za-z_]\w*", path).group(0)  # type: ignore[union-attr]
        if name not in namespace:
            raise TemplateError(
                f"The cell refers to {{{path}}}, but the notebook has no variable {name!r}; "
                f"define it first, or write {{{{{path}}}}} for literal braces.") from None
        raise TemplateError(f"{{{path}}}: {name} has no item {exc}.") from None
    except (AttributeError, IndexError, TypeError) as exc:
        raise TemplateError(f"{{{path}}} cannot be looked up: {exc}.") from None
    return value


def interpolate(text: str, namespace: Mapping[str, Any]) -> Any:
    """``text`` with ``{name}`` placeholders filled from ``namespace``; a text that is exactly
    one placeholder gives the object itself.

    >>> interpolate("Hello {user.name}!", {"user": SimpleNamespace(name="Ada")})
    'Hello Ada!'
    >>> interpolate("{docs}", {"docs": ["a", "b"]})
    ['a', 'b']
    """
    whole = _PLACEHOLDER.fullmatch(text.strip())
    if whole and whole.group(1) and not whole.group(2):
        return _lookup(whole.group(1), namespace)

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = _lookup(match.group(1), namespace)
        conversion = match.group(2)
        return repr(value) if conversion == "r" else ascii(value) if conversion == "a" \
            else str(value)

    return _PLACEHOLDER.sub(fill, text)


def _split_fields(body: str, names: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """(lines before the first field, {field: raw text}) for ``field: value`` lines."""
    lead: list[str] = []
    raw: dict[str, list[str]] = {}
    current: str | None = None
    for line in body.splitlines():
        match = _KEY_LINE.match(line)
        if match and (names is None or match.group(1) in names) and match.group(1) not in raw:
            current = match.group(1)
            raw[current] = [line[match.end():].strip()]
        else:
            (raw[current] if current is not None else lead).append(line)
    return lead, {k: _join(v) for k, v in raw.items()}


def _join(lines: list[str]) -> str:
    """A value from its first line and its continuation lines (dedented)."""
    rest = textwrap.dedent("\n".join(lines[1:])).strip("\n")
    return "\n".join(p for p in (lines[0], rest) if p.strip())


def _is_text(field: Any) -> bool:
    return field is None or str(field.type) in _TEXT_TYPES


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _block_scalar(text: str) -> str:
    """A YAML block scalar (``|`` keeps line breaks, ``>`` folds them) from its indicator line
    and its (dedented) content."""
    indicator, _, content = text.partition("\n")
    loaded = _yaml(f"v: {indicator}\n" + textwrap.indent(content, "  "))
    return loaded["v"] if isinstance(loaded, dict) and isinstance(loaded.get("v"), str) \
        else content


def _value(raw: str, field: Any, namespace: Mapping[str, Any]) -> Any:
    whole = _PLACEHOLDER.fullmatch(raw.strip())
    value = interpolate(raw, namespace)
    if not isinstance(value, str) or (whole and whole.group(1) and not whole.group(2)):
        return value                              # exactly one {name}: the object itself
    text = value.strip()
    if text[:1] in ("|", ">") and re.match(r"^[|>][+-]?\d?[+-]?\n", text + "\n"):
        return _block_scalar(text)
    if _is_text(field):
        quoted = len(text) > 1 and text[0] == text[-1] and text[0] in "\"'"
        loaded = _yaml(text) if quoted else text
        return loaded if isinstance(loaded, str) else text
    loaded = _yaml(text)
    return text if loaded is None and text else loaded


def parse_body(body: str, sig: Any, namespace: Mapping[str, Any],
               input_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The inputs a cell body gives for ``sig`` (a dspex ``Signature``, or None for a program
    without one: then the inputs are ``input_names`` -- a module's ``forward`` parameters --
    or, when those are unknown too, every ``field: value`` line). Raises ``ValidationError``
    naming the missing or unreadable inputs, ``TemplateError`` for a bad ``{name}``."""
    names = list(sig.input_names) if sig is not None else \
        (list(input_names) if input_names else None)
    fields = {f.name: f for f in sig.inputs} if sig is not None else {}
    lead, raw = _split_fields(body, names)
    if names is not None and len(names) == 1 and not raw:
        raw = {names[0]: body.strip("\n")}
        lead = []
    stray = [line.strip() for line in lead if line.strip()]
    if stray:
        expected = ", ".join(names) if names else "the input names"
        raise ValidationError([("cell body", f"the line {stray[0]!r} gives no input; write "
                                f"one `field: value` line per input ({expected})")])
    missing = [n for n in names or [] if n not in raw and n in fields
               and not fields[n].type.optional]
    if sig is None:  # a module's forward parameters: all of them are needed
        missing = [n for n in names or [] if n not in raw]
    if missing:
        raise ValidationError([(n, f"has no value in the cell; add a line `{n}: ...`")
                               for n in missing])
    return {name: _value(text, fields.get(name), namespace) for name, text in raw.items()}


def parse_columns(body: str, sig: Any) -> dict[str, str] | None:
    """For ``--df``: ``field: column`` lines mapping inputs to DataFrame columns (None for an
    empty body)."""
    if not body.strip():
        return None
    lead, raw = _split_fields(body, list(sig.input_names) if sig is not None else None)
    stray = [line.strip() for line in lead if line.strip()]
    if stray or any(not v.strip() for v in raw.values()):
        raise ValidationError([("cell body", "with --df the body may only map inputs to "
                                "columns, one `field: column` line each")])
    return {k: v.strip() for k, v in raw.items()}
