"""Native templates: ``{name}`` placeholders filled from a row, and nothing else.

A template is parsed once into literal text and variables; rendering is ``str.format_map`` on
text that was checked to hold only plain variable names, so no code runs from template text:
no attribute access (``{x.__class__}``), no indexing (``{x[0]}``), no conversions (``{x!r}``),
no nested fields. ``{{`` and ``}}`` are literal braces. A format spec from the standard
mini-language is allowed (``{score:.2f}``, ``{name:>10}``), with widths up to 1,000.

    >>> t = template("Answer about {topic}: {question}")
    >>> t.variables
    ('topic', 'question')
    >>> t.render(topic="maths", question="What is 2 + 3?")
    'Answer about maths: What is 2 + 3?'
    >>> t({"topic": "geography", "question": "Capital of France?"})   # a pipeline step
    'Answer about geography: Capital of France?'
    >>> template("{answer} ({score:.1f})", available=["answer"])
    Traceback (most recent call last):
    TemplateError: Template needs 'score', which is not among the available fields: answer. ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from dspex_lab.errors import TemplateError

__all__ = ["Template", "render_template", "template"]

MAX_WIDTH = 1000
_SPEC = re.compile(
    r"(?:(?P<fill>[^{}])?[<>=^])?[-+ ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?"
    r"[bcdeEfFgGnosxX%]?\Z"
)
_LITERAL = re.compile(r"[^{}]+")


class Template:
    """A parsed template. Build with ``template(text)`` or ``Template(text, available=...)``.

    ``available`` (a list of field names, a Signature, a dspy Signature class, a DataFrame or a
    mapping) makes the template check, when built, that every variable it uses exists.
    """

    __slots__ = ("_format", "_specs", "text", "variables")

    def __init__(self, text: str, available: Any = None) -> None:
        if not isinstance(text, str):
            raise TemplateError(f"A template is a string, got {type(text).__name__}: {text!r}.")
        self.text = text
        self._format, self.variables, self._specs = _parse(text)
        if available is not None:
            self.check(available)

    def check(self, available: Any) -> Template:
        """Raise ``TemplateError`` naming every variable not in ``available``; returns self."""
        names = _available_names(available)
        missing = [v for v in self.variables if v not in names]
        if missing:
            listed = ", ".join(repr(m) for m in missing)
            have = ", ".join(sorted(names)) or "(none)"
            raise TemplateError(
                f"Template needs {listed}, which {'is' if len(missing) == 1 else 'are'} not "
                f"among the available fields: {have}. Rename the placeholder or provide the "
                f"field.\n  {self.text}"
            )
        return self

    def render(self, mapping: Mapping[str, Any] | None = None, /, **values: Any) -> str:
        """Fill the placeholders from ``mapping`` and/or keyword ``values``.

        >>> template("{a} + {b}").render({"a": 2}, b=3)
        '2 + 3'
        """
        if mapping is not None:
            values = {**_as_mapping(mapping), **values} if values else _as_mapping(mapping)
        try:
            return self._format.format_map(values)
        except KeyError:
            missing = [v for v in self.variables if v not in values]
            got = ", ".join(map(str, values)) or "none"
            raise TemplateError(
                f"Cannot render the template: no value for {', '.join(map(repr, missing))}. "
                f"It needs {', '.join(self.variables)}; got {got}."
            ) from None
        except (ValueError, TypeError) as exc:
            raise self._spec_error(values, exc) from None

    def __call__(self, row: Mapping[str, Any]) -> str:
        """Render one row (a dict, a pandas row or any mapping): the native pipeline step form."""
        return self.render(row)

    def render_many(self, rows: Any) -> Any:
        """Render every row of a DataFrame (a string Series on its index) or list of mappings.

        >>> template("Q: {question}").render_many(df)
        """
        if hasattr(rows, "columns") and hasattr(rows, "index"):
            import pandas as pd

            missing = [v for v in self.variables if v not in rows.columns]
            if missing:
                raise TemplateError(
                    f"The DataFrame has no column {', '.join(map(repr, missing))} for the "
                    f"template {self.text!r}; its columns: {', '.join(map(str, rows.columns))}."
                )
            records = rows[list(self.variables)].to_dict("records")
            return pd.Series([self.render(r) for r in records], index=rows.index, dtype=object)
        return [self.render(r) for r in rows]

    def _spec_error(self, values: Mapping[str, Any], exc: Exception) -> TemplateError:
        for name, spec in self._specs:
            try:
                format(values[name], spec)
            except (ValueError, TypeError) as err:
                return TemplateError(
                    f"Cannot format variable {name!r} (value {values[name]!r}) with "
                    f"'{{{name}:{spec}}}': {err}. Pass a value of the right type or change the "
                    "format spec."
                )
        return TemplateError(f"Cannot render the template {self.text!r}: {exc}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("Template", self.text))

    def __reduce__(self) -> tuple:
        return (Template, (self.text,))

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def template(text: str, *, available: Any = None) -> Template:
    """A ``Template`` for ``text``; with ``available``, check its variables now.

    >>> template("Answer about {topic}: {question}").variables
    ('topic', 'question')
    """
    return Template(text, available)


def render_template(tmpl: Template | str, values: Mapping[str, Any]) -> str:
    """Render a template (or template text) with ``values``: the ``template.render`` op."""
    return (tmpl if isinstance(tmpl, Template) else Template(tmpl)).render(values)


@lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Check ``text``; return the safe format string, the variables and the (name, spec) pairs."""
    out: list[str] = []
    variables: dict[str, None] = {}
    specs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        chunk = _LITERAL.match(text, i)
        if chunk:
            out.append(chunk.group())
            i = chunk.end()
            continue
        if text.startswith("{{", i) or text.startswith("}}", i):
            out.append(text[i:i + 2])
            i += 2
            continue
        if text[i] == "}":
            raise _error(text, i, "A single '}' has no matching '{'; write '}}' for a literal "
                         "brace")
        end = _field_end(text, i)
        name, spec = _field(text, i + 1, text[i + 1:end])
        variables.setdefault(name)
        if spec:
            specs.append((name, spec))
        out.append(f"{{{name}:{spec}}}" if spec else f"{{{name}}}")
        i = end + 1
    return "".join(out), tuple(variables), tuple(specs)


def _field_end(text: str, start: int) -> int:
    """The index of the ``}`` closing the placeholder opened at ``start``."""
    for j in range(start + 1, len(text)):
        if text[j] == "}":
            return j
        if text[j] == "{":
            raise _error(text, j, "Nested '{' inside a placeholder is not allowed; write '{{' for "
                         "a literal brace")
    raise _error(text, start, "This '{' is never closed; close it with '}' or write '{{' for a "
                 "literal brace")


def _field(text: str, col: int, body: str) -> tuple[str, str]:
    """Check one placeholder body (``name`` or ``name:spec``) that starts at column ``col``."""
    name, _, spec = body.partition(":")
    for char, what in ((".", "attribute access"), ("[", "indexing"), ("!", "a conversion")):
        if char in name:
            raise _error(text, col + name.index(char),
                         f"Placeholders cannot use {what}; only plain variable names like "
                         "{name} are allowed (no code runs from template text)")
    stripped = name.strip()
    if not stripped:
        raise _error(text, col - 1, "Empty placeholder '{}'; name the variable, e.g. {question}")
    if not stripped.isidentifier():
        raise _error(text, col, f"{stripped!r} is not a valid variable name; use letters, digits "
                     "and underscores")
    if stripped != name:
        raise _error(text, col, f"Remove the spaces around {stripped!r} in the placeholder")
    if spec:
        _check_spec(text, col + len(name) + 1, spec)
    return name, spec


def _check_spec(text: str, col: int, spec: str) -> None:
    match = _SPEC.match(spec)
    if not match:
        raise _error(text, col, f"Unsupported format spec {spec!r}; use the standard mini-language "
                     "such as .2f, >10, 05d or ,")
    for part in ("width", "precision"):
        if match.group(part) and int(match.group(part)) > MAX_WIDTH:
            raise _error(text, col, f"The {part} in format spec {spec!r} is larger than "
                         f"{MAX_WIDTH}")


def _error(text: str, column: int, reason: str) -> TemplateError:
    line = text.replace("\n", " ")
    err = TemplateError(f"{reason} (column {column + 1})\n  {line}\n  {' ' * column}^")
    err.text, err.column, err.reason = text, column, reason
    return err


def _as_mapping(values: Any) -> Mapping[str, Any]:
    if isinstance(values, dict):
        return values
    if hasattr(values, "to_dict") and hasattr(values, "index"):  # a pandas Series (a row)
        return values.to_dict()
    if isinstance(values, Mapping) or hasattr(values, "keys"):
        return {k: values[k] for k in values.keys()}  # noqa: SIM118 (not a dict)
    raise TemplateError(
        f"Render a template with a mapping of variable values, not {type(values).__name__}."
    )


def _available_names(available: Any) -> set[str]:
    """Field names from a list, a Signature (ours or dspy's), a DataFrame or a mapping."""
    if isinstance(available, str):
        return {available}
    if hasattr(available, "input_names") and hasattr(available, "output_names"):
        return {*available.input_names, *available.output_names}
    if hasattr(available, "input_fields") and hasattr(available, "output_fields"):
        return {*available.input_fields, *available.output_fields}
    if hasattr(available, "columns"):
        return {str(c) for c in available.columns}
    if isinstance(available, Iterable):
        return {str(a) for a in available}
    raise TemplateError(
        f"'available' must be field names, a Signature or a DataFrame, not "
        f"{type(available).__name__}."
    )
