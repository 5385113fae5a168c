"""Frozen values that describe a signature: ``TypeSpec``, ``Field`` and ``Signature``.

They are plain data (hashable, picklable, cheap to compare) built by the pure parser in
``parse.py``; nothing here imports dspy. Conversions live elsewhere and are reached through
methods: ``to_dspy.py`` (the only dspy conversion point), ``validate.py``, ``schema.py`` and
``render.py``.

>>> from dspex_lab.signatures import signature
>>> sig = signature("question, context: list[str] -> answer")
>>> sig.input_names, str(sig.inputs[1].type)
(('question', 'context'), 'list[str]')
"""

from __future__ import annotations

import dataclasses
import inspect
import keyword
import unicodedata
from collections.abc import Iterable
from typing import Any, Literal

from dspex_lab.errors import SignatureError
from dspex_lab.signatures.known import ARITY, RESERVED_FIELD_NAMES, is_scalar, python_scalar

__all__ = ["Field", "Signature", "TypeSpec", "custom_type", "name_problem", "with_form"]

_set = object.__setattr__
_LITERAL_VALUE_TYPES = (str, int, bool, type(None))


class TypeSpec:
    """A field type as frozen, hashable data: ``str(TypeSpec.parse("dict[str, int]"))``.

    ``name`` is a canonical type name (``"list"``, ``"int"``, ``"dspy.Image"``), ``"Union"`` or
    ``"Literal"``; ``args`` holds the type arguments (``TypeSpec``s, plus a trailing ``...`` for
    ``tuple[int, ...]``), the members of a union, or the values of a ``Literal``. Unions are
    normalized: nested unions flattened, duplicates dropped, ``None`` moved last, and a union of
    one member is that member (``Optional[int]`` == ``None | int`` == ``int | None``).

    Equality and ``str()`` are normalized, but ``to_python()`` is exactly what ``dspy.Signature``
    builds for the text as written (``Tuple[int]`` stays ``typing.Tuple[int]``, ``None | int``
    stays ``Union[NoneType, int]``). A *custom* type (``custom`` is True: a pydantic model, an
    Enum, any class or typing form outside the known names) holds the Python object itself:
    ``name`` is the name it was written with, ``to_python()`` returns the object, and equality
    is the object's.

    >>> t = TypeSpec.parse("Optional[list[int]]")
    >>> str(t), t.optional, t.to_python()
    ('list[int] | None', True, typing.Optional[list[int]])
    """

    __slots__ = ("_form", "_hash", "_key", "_python", "_text", "args", "name")
    name: str
    args: tuple

    def __new__(cls, name: str, args: Iterable[Any] = ()) -> TypeSpec:
        args = tuple(args)
        if name == "Union":
            return union_of(args)
        if name == "Literal":
            return literal_of(args)
        _check_plain(name, args)
        return _make(name, args)

    @classmethod
    def parse(cls, text: str) -> TypeSpec:
        """Parse a type alone: ``TypeSpec.parse("list[int | None]")``."""
        from dspex_lab.signatures.parse import parse_type

        return parse_type(text)

    @classmethod
    def of(cls, obj: Any, custom: bool = False) -> TypeSpec:
        """The TypeSpec of a typing object: ``str(TypeSpec.of(list[int])) == "list[int]"``.

        A type outside the known names raises SignatureError (its text would not read the same
        everywhere) unless ``custom=True``, which makes it a custom TypeSpec holding the object.
        """
        from dspex_lab.signatures.to_dspy import typespec_of

        return typespec_of(obj, custom=custom)

    @property
    def custom(self) -> bool:
        """True for a type outside the known names, held as its Python object (``to_python()``)."""
        return self._key[0] is _CUSTOM

    @property
    def optional(self) -> bool:
        """True when ``None`` is an accepted value (``T | None``, ``Any``, ``None``)."""
        if self.name == "Union":
            return any(a.optional for a in self.args)
        return self.name in ("None", "Any")

    def to_python(self) -> Any:
        """The Python typing object, as DSPy would build it: ``list[str]``, ``Optional[int]``."""
        if self._python is None:
            _set(self, "_python", _to_python(self))
        return self._python

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"TypeSpec({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is TypeSpec and self._key == other._key)

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"TypeSpec is immutable; cannot set {key!r}")

    def __reduce__(self) -> tuple:
        if self.custom:
            return (custom_type, (self.name, self._python))
        if self._form is None:
            return (TypeSpec, (self.name, self.args))
        return (_rebuild, (self.name, self.args, self._form))


_CUSTOM = "<custom>"  # the first item of a custom type's key


def _make(name: str, args: tuple = (), form: tuple | None = None) -> TypeSpec:
    """Build a TypeSpec from arguments already checked and normalized (the parser's fast path).

    ``form`` says how DSPy builds the Python object when it differs from the normalized one:
    ``("typing", "List")`` (a typing alias), ``(kind, members, consts)`` for a union as written
    (see ``_written_union``) or ``("py", obj)`` (exactly ``obj``).
    """
    spec = object.__new__(TypeSpec)
    _set(spec, "name", name)
    _set(spec, "args", args)
    _set(spec, "_form", form)
    if name == "Literal":
        # equal as typing's Literals are: by their values, in any order (typing caches a
        # Literal and the Unions holding it by that equality, so DSPy may hand back either)
        key = (name, frozenset((type(v), v) for v in args))
        text = f"Literal[{', '.join(repr(v) for v in args)}]"
    else:
        key = (name, args)
        if name == "Union":
            text = " | ".join(a._text for a in args)
        elif args:
            text = f"{name}[{', '.join('...' if a is ... else a._text for a in args)}]"
        else:
            text = name
    _set(spec, "_key", key)
    _set(spec, "_hash", hash(key))
    _set(spec, "_text", text)
    _set(spec, "_python", form[1] if form is not None and form[0] == "py" else None)
    return spec


def custom_type(name: str, obj: Any) -> TypeSpec:
    """The custom TypeSpec named ``name`` that holds ``obj`` (a class or typing form)."""
    spec = object.__new__(TypeSpec)
    try:
        key = (_CUSTOM, obj)
        hash(key)
    except TypeError:  # an unhashable typing form (Annotated with unhashable metadata)
        key = (_CUSTOM, id(obj))
    for attr, value in (("name", name), ("args", ()), ("_form", ("py", obj)), ("_key", key),
                        ("_hash", hash(key)), ("_text", name), ("_python", obj)):
        _set(spec, attr, value)
    return spec


def with_form(spec: TypeSpec, form: tuple | None) -> TypeSpec:
    """``spec`` with DSPy's spelling ``form`` (a new object; ``spec`` itself is unchanged)."""
    if form is None or spec.custom:
        return spec
    return _make(spec.name, spec.args, form)


def _rebuild(name: str, args: tuple, form: tuple) -> TypeSpec:
    return with_form(TypeSpec(name, args), form)


def _check_plain(name: str, args: tuple) -> None:
    """Raise ValueError unless ``name[args]`` is a valid scalar or generic TypeSpec."""
    if is_scalar(name):
        if args:
            raise ValueError(f"{name} takes no type arguments, got {len(args)}.")
        return
    if name not in ARITY:
        raise ValueError(f"Unknown type name {name!r}; use a canonical name such as 'list'.")
    arity = ARITY[name]
    if args and arity > 0 and len(args) != arity:
        raise ValueError(f"{name} takes {arity} type argument(s), got {len(args)}.")
    for i, arg in enumerate(args):
        ok_ellipsis = arg is ... and name == "tuple" and i == 1 == len(args) - 1
        if not (isinstance(arg, TypeSpec) or ok_ellipsis):
            raise ValueError(f"Type argument {arg!r} of {name} must be a TypeSpec.")


def union_of(members: Iterable[TypeSpec]) -> TypeSpec:
    """The normalized union of ``members`` (flattened, deduplicated, ``None`` last)."""
    flat: list[TypeSpec] = []
    for m in members:
        if not isinstance(m, TypeSpec):
            raise ValueError(f"Union members must be TypeSpecs, got {m!r}.")
        for part in (m.args if m.name == "Union" else (m,)):
            if part not in flat:
                flat.append(part)
    if not flat:
        raise ValueError("A Union needs at least one member.")
    flat.sort(key=lambda t: t.name == "None")  # stable: only moves None to the end
    return flat[0] if len(flat) == 1 else _make("Union", tuple(flat))


def literal_of(values: Iterable[Any]) -> TypeSpec:
    """A ``Literal`` of ``values`` (str, int, bool or None), duplicates dropped."""
    seen: dict[tuple, Any] = {}
    for v in values:
        if type(v) not in _LITERAL_VALUE_TYPES:
            raise ValueError(f"Literal values must be str, int, bool or None, got {v!r}.")
        seen.setdefault((type(v), v), v)
    if not seen:
        raise ValueError("A Literal needs at least one value.")
    return _make("Literal", tuple(seen.values()))


def _to_python(spec: TypeSpec) -> Any:
    import typing

    name, args, form = spec.name, spec.args, spec._form
    if name == "Union":
        if form is not None and form[0] in ("union", "optional", "or"):
            return _written_union(*form)
        return typing.Union[tuple(a.to_python() for a in args)]  # noqa: UP007 (DSPy's form)
    if name == "Literal":
        return Literal[args]
    if is_scalar(name):
        return python_scalar(name)
    if form is not None and form[0] == "typing":
        base = getattr(typing, form[1])
    else:
        base = {"list": list, "set": set, "dict": dict, "tuple": tuple}[name]
    if not args:
        return base
    return base[tuple(... if a is ... else a.to_python() for a in args)]


def _written_union(kind: str, members: tuple, consts: tuple) -> Any:
    """The union as DSPy builds it from the text, member by member, so that typing's cache
    (which treats ``Union[None, int]`` and ``Union[int, None]`` as one key) gives DSPy's object.

    ``consts[i]`` is True where the text has the constant ``None`` (DSPy passes ``None``, not
    ``NoneType``). ``kind``: ``"union"`` is ``Union[...]``, ``"optional"`` is ``Optional[x]``,
    ``"or"`` is ``a | b | c``, folded like DSPy: ``Optional[left]`` when the right side is the
    class ``NoneType``, else ``Optional[right]`` when the left side is, else ``Union[left, right]``.
    """
    import typing

    values = [None if c else m.to_python() for m, c in zip(members, consts, strict=True)]
    if kind == "union":
        return typing.Union[tuple(values)]  # noqa: UP007
    if kind == "optional":
        return typing.Optional[values[0]]  # noqa: UP045
    acc = values[0]
    for right in values[1:]:
        if right is type(None):
            acc = typing.Optional[acc]  # noqa: UP045
        elif acc is type(None):
            acc = typing.Optional[right]  # noqa: UP045
        else:
            acc = typing.Union[acc, right]  # noqa: UP007
    return acc


STR = _make("str")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a field name, or None when it can."""
    if not name.isidentifier():
        return f"{name!r} is not a valid field name; use letters, digits and underscores"
    if name.startswith("_"):
        return f"field names cannot start with an underscore ({name!r}); DSPy rejects them"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword and cannot be a field name"
    if name in RESERVED_FIELD_NAMES:
        return f"{name!r} is reserved by DSPy (a Signature attribute); rename the field"
    if not name.isascii() and unicodedata.normalize("NFKC", name) != name:
        normal = unicodedata.normalize("NFKC", name)
        return f"field name {name!r} is not NFKC-normalized; Python reads it as {normal!r}"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One input or output of a signature.

    ``typed`` records whether the type was written (``x`` vs ``x: str``). DSPy tracks that for
    inputs only (it skips type-mismatch warnings for untyped inputs), so it is normalized: a
    field whose type is not ``str`` is always typed, and a ``str`` output is always untyped.

    >>> Field("answer", TypeSpec("int"), "a number", "output")
    Field(name='answer', type=TypeSpec('int'), description='a number', kind='output', typed=True)
    """

    name: str
    type: TypeSpec
    description: str | None
    kind: Literal["input", "output"]
    typed: bool = True

    def __post_init__(self) -> None:
        problem = name_problem(self.name) if type(self.name) is str else "names must be str"
        if problem:
            raise SignatureError(f"Bad field name: {problem}.")
        if type(self.type) is not TypeSpec:
            raise SignatureError(f"Field {self.name!r} needs a TypeSpec, got {self.type!r}.")
        if self.kind not in ("input", "output"):
            raise SignatureError(f"Field kind must be 'input' or 'output', got {self.kind!r}.")
        if self.description is not None and type(self.description) is not str:
            raise SignatureError(f"Description of {self.name!r} must be str or None.")
        typed = self.type != STR or (self.kind == "input" and bool(self.typed))
        if typed is not self.typed:
            _set(self, "typed", typed)

    def __str__(self) -> str:
        text = f"{self.name}: {self.type}" if self.typed else self.name
        return text if self.description is None else f"{text} {self.description!r}"


@dataclasses.dataclass(frozen=True, slots=True)
class Signature:
    """An immutable signature: ordered input and output ``Field``s plus optional instructions.

    Build one with ``signature(text)``. ``str(sig)`` is canonical text that re-parses to an
    equal Signature; instructions are not part of that text (pass them separately). They are
    normalized the way DSPy reads them (``inspect.cleandoc``; empty text means None).
    Mutators (``with_instructions``) return new objects.

    >>> sig = signature("question -> answer: int 'a number'")
    >>> str(sig), sig.output_names
    ("question -> answer: int 'a number'", ('answer',))
    """

    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]
    instructions: str | None = None
    _memo: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                    compare=False, hash=False)

    def __post_init__(self) -> None:
        if type(self.inputs) is not tuple:
            _set(self, "inputs", tuple(self.inputs))
        if type(self.outputs) is not tuple:
            _set(self, "outputs", tuple(self.outputs))
        if not self.inputs or not self.outputs:
            raise SignatureError("A signature needs at least one input and one output field.")
        if self.instructions is not None:
            if type(self.instructions) is not str:
                raise SignatureError(
                    f"Instructions must be str or None, got {self.instructions!r}.")
            text = inspect.cleandoc(self.instructions)  # what DSPy's .instructions returns
            _set(self, "instructions", text or None)
        names: set[str] = set()
        for kind, side in (("input", self.inputs), ("output", self.outputs)):
            for f in side:
                if type(f) is not Field or f.kind != kind:
                    raise SignatureError(f"Expected {kind} Fields in the {kind}s, got {f!r}.")
                if f.name in names:
                    raise SignatureError(f"Field name {f.name!r} is used twice; names must be "
                                         "unique across inputs and outputs.")
                names.add(f.name)

    # -- views ---------------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the input fields, in order."""
        return tuple(f.name for f in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the output fields, in order."""
        return tuple(f.name for f in self.outputs)

    @property
    def fields(self) -> tuple[Field, ...]:
        """Inputs then outputs."""
        return self.inputs + self.outputs

    def __str__(self) -> str:
        text = self._memo.get("text")
        if text is None:
            text = self._memo["text"] = (", ".join(map(str, self.inputs)) + " -> "
                                         + ", ".join(map(str, self.outputs)))
        return text

    def __repr__(self) -> str:
        extra = "" if self.instructions is None else f", instructions={self.instructions!r}"
        return f"signature({str(self)!r}{extra})"

    def __reduce__(self) -> tuple:
        source = self._memo.get("source")  # the dspy class of from_dspy(), kept exactly
        if source is None:
            return (Signature, (self.inputs, self.outputs, self.instructions))
        return (_with_source, (self.inputs, self.outputs, self.instructions, source))

    # -- new objects -----------------------------------------------------------------------------
    def with_instructions(self, text: str | None) -> Signature:
        """A copy with other instructions: ``sig.with_instructions("Answer briefly.")``."""
        new = Signature(self.inputs, self.outputs, text)
        source = self._memo.get("source")
        if source is not None:  # keep the dspy class's details (prefixes, defaults...)
            new._memo["dspy"] = new._memo["source"] = source.with_instructions(
                new.instructions or _default_text(new))
        return new

    # -- conversions (each lives in its own module) ----------------------------------------------
    def to_dspy(self) -> type:
        """The equivalent ``dspy.Signature`` subclass (built once per Signature, then cached).

        Do not mutate the returned class: it is shared.
        """
        cls = self._memo.get("dspy")
        if cls is None:
            from dspex_lab.signatures.to_dspy import to_dspy

            cls = self._memo["dspy"] = to_dspy(self)
        return cls

    @classmethod
    def from_dspy(cls, dspy_signature: type) -> Signature:
        """The Signature of a ``dspy.Signature`` subclass (inverse of ``to_dspy``)."""
        from dspex_lab.signatures.to_dspy import from_dspy

        return from_dspy(dspy_signature)

    def to_json_schema(self) -> dict:
        """A JSON schema of ``{"inputs": {...}, "outputs": {...}}`` for this signature."""
        from dspex_lab.signatures.schema import signature_schema

        return signature_schema(self)

    def validate_inputs(self, values: dict) -> dict:
        """A coerced copy of ``values``; raises ValidationError listing every problem."""
        return self._validator("inputs")(values)

    def validate_outputs(self, values: dict) -> dict:
        """A coerced copy of ``values``; raises ValidationError listing every problem."""
        return self._validator("outputs")(values)

    def _validator(self, what: str):
        fn = self._memo.get(what)
        if fn is None:
            from dspex_lab.signatures.validate import compile_fields

            fn = self._memo[what] = compile_fields(getattr(self, what), what)
        return fn

    def _repr_html_(self) -> str:
        from dspex_lab.signatures.render import to_html

        return to_html(self)

    def _repr_markdown_(self) -> str:
        from dspex_lab.signatures.render import to_markdown

        return to_markdown(self)


def _with_source(inputs: tuple, outputs: tuple, instructions: str | None,
                 source: type) -> Signature:
    sig = Signature(inputs, outputs, instructions)
    sig._memo["dspy"] = sig._memo["source"] = source
    return sig


def _default_text(sig: Signature) -> str:
    from dspex_lab.signatures.to_dspy import default_instructions

    return default_instructions(sig.input_names, sig.output_names)
