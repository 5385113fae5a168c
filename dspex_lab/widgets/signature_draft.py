"""``SignatureDraft``: an editable signature (the model the ``SignatureBuilder`` widget views).

A draft is a plain, mutable list of input and output fields plus instructions. It renders to
signature text, which the one parser (``dspex_lab.signatures``) checks: the errors a draft
shows are exactly the parser's ``SignatureError``s, caret included, and ``error_field`` says
which field the caret points into. Works without Jupyter.

    >>> draft = SignatureDraft.from_text("question -> answer")
    >>> _ = draft.add("input", "context", "list[str]", "passages to use")
    >>> draft.move("input", 1, -1)                       # context first: its new index
    0
    >>> draft.text
    "context: list[str] 'passages to use', question -> answer"
    >>> draft.errors
    []
    >>> draft.signature.input_names
    ('context', 'question')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from dspex_lab.errors import SignatureError
from dspex_lab.signatures import Signature, signature

__all__ = ["TYPE_CHOICES", "FieldDraft", "SignatureDraft"]

Kind = Literal["input", "output"]

TYPE_CHOICES = ("str", "int", "float", "bool", "list[str]", "list[int]", "dict[str, str]",
                "Literal['yes', 'no']", "str | None", "datetime", "dspy.Image", "Any")
"""Types offered in the builder's type box (any type the parser accepts may be typed in)."""

_TYPING_NAMES = ("Literal", "Any")
_DATETIME_NAMES = ("datetime", "date")


@dataclass
class FieldDraft:
    """One field being edited: ``name``, ``type`` text (``"str"`` by default) and an optional
    ``description``."""

    name: str = ""
    type: str = "str"
    description: str = ""

    def text(self) -> str:
        """The field as signature text: ``name: type 'description'``."""
        kind = self.type.strip()
        out = self.name.strip() if kind in ("", "str") else f"{self.name.strip()}: {kind}"
        return f"{out} {self.description!r}" if self.description else out


@dataclass
class SignatureDraft:
    """Input and output ``FieldDraft``s and instructions; see the module docstring."""

    inputs: list[FieldDraft] = field(default_factory=list)
    outputs: list[FieldDraft] = field(default_factory=list)
    instructions: str = ""

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def from_signature(cls, sig: Signature) -> SignatureDraft:
        """A draft holding the fields of ``sig``."""
        def drafts(fields: tuple) -> list[FieldDraft]:
            return [FieldDraft(f.name, str(f.type), f.description or "") for f in fields]

        return cls(drafts(sig.inputs), drafts(sig.outputs), sig.instructions or "")

    @classmethod
    def from_text(cls, text: str, instructions: str | None = None) -> SignatureDraft:
        """A draft from signature text (raises ``SignatureError`` if it does not parse)."""
        return cls.from_signature(signature(text, instructions))

    def side(self, kind: Kind) -> list[FieldDraft]:
        """The input or output list."""
        if kind not in ("input", "output"):
            raise ValueError(f"kind={kind!r} is not valid; use 'input' or 'output'.")
        return self.inputs if kind == "input" else self.outputs

    def add(self, kind: Kind, name: str = "", type: str = "str",
            description: str = "") -> FieldDraft:
        """Append a field to the inputs or outputs and return it."""
        new = FieldDraft(name, type, description)
        self.side(kind).append(new)
        return new

    def remove(self, kind: Kind, index: int) -> FieldDraft:
        """Remove and return field ``index`` of the inputs or outputs."""
        return self.side(kind).pop(index)

    def move(self, kind: Kind, index: int, offset: int) -> int:
        """Move field ``index`` by ``offset`` places (-1: up, +1: down), clamped to the list;
        returns its new index."""
        items = self.side(kind)
        new = max(0, min(len(items) - 1, index + offset))
        items.insert(new, items.pop(index))
        return new

    # -- views -----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The signature text: ``inputs -> outputs``."""
        return self._render()[0]

    def _render(self) -> tuple[str, list[tuple[int, int, Kind, int]]]:
        """The text and the span ``(start, end, kind, index)`` of every field in it."""
        text = ""
        spans: list[tuple[int, int, Kind, int]] = []
        for kind, fields, sep in (("input", self.inputs, " -> "), ("output", self.outputs, "")):
            for i, f in enumerate(fields):
                piece = f.text()
                spans.append((len(text), len(text) + len(piece), kind, i))
                text += piece + (", " if i < len(fields) - 1 else "")
            text += sep
        return text.rstrip(), spans

    @property
    def error(self) -> SignatureError | None:
        """The parser's error for the current text, or None when it is valid."""
        try:
            self.signature  # noqa: B018
        except SignatureError as exc:
            return exc
        return None

    @property
    def errors(self) -> list[str]:
        """The parser's messages (with the caret), empty when the draft is valid."""
        err = self.error
        return [] if err is None else [str(err)]

    @property
    def error_field(self) -> tuple[Kind, int] | None:
        """``(kind, index)`` of the field the current error is about: a field without a name
        (the parser then points at a comma or the arrow next to it), else the field the caret
        points into."""
        err = self.error
        if err is None:
            return None
        for kind, fields in (("input", self.inputs), ("output", self.outputs)):
            for i, f in enumerate(fields):
                if not f.name.strip():
                    return kind, i  # type: ignore[return-value]
        text, spans = self._render()
        if err.column is None or err.text != text:
            return None
        inside = [(kind, i) for start, end, kind, i in spans if start <= err.column < end]
        return inside[0] if inside else None

    @property
    def signature(self) -> Signature:
        """The ``Signature`` (raises ``SignatureError`` while the draft is invalid)."""
        return signature(self.text, self.instructions.strip() or None)

    def to_code(self, class_name: str | None = None) -> str:
        """Python source of the equivalent ``dspy.Signature`` class, plus the one-line form.

        >>> print(SignatureDraft.from_text("question -> answer: int").to_code())
        import dspy
        <BLANKLINE>
        <BLANKLINE>
        class QuestionToAnswer(dspy.Signature):
            question: str = dspy.InputField()
            answer: int = dspy.OutputField()
        <BLANKLINE>
        <BLANKLINE>
        # or, as text: dspex_lab.signature('question -> answer: int')
        """
        sig = self.signature
        types = " ".join(str(f.type) for f in sig.fields)
        imports = [f"from datetime import {n}" for n in _DATETIME_NAMES if _uses(types, n)]
        typing = [n for n in _TYPING_NAMES if _uses(types, n)]
        if typing:
            imports.append(f"from typing import {', '.join(typing)}")
        lines = [*sorted(imports), "", "import dspy", "", ""] if imports else ["import dspy",
                                                                                "", ""]
        lines.append(f"class {class_name or _class_name(sig)}(dspy.Signature):")
        if sig.instructions:  # the docstring is what DSPy reads as the instructions
            doc = sig.instructions
            simple = "\n" not in doc and '"' not in doc and "\\" not in doc
            lines += [f'    """{doc}"""' if simple else f"    {doc!r}", ""]
        for f in sig.fields:
            maker = "InputField" if f.kind == "input" else "OutputField"
            desc = "" if f.description is None else f"desc={f.description!r}"
            lines.append(f"    {f.name}: {f.type} = dspy.{maker}({desc})")
        one_line = f"dspex_lab.signature({str(sig)!r}" + (
            f", instructions={sig.instructions!r})" if sig.instructions else ")")
        return "\n".join([*lines, "", "", f"# or, as text: {one_line}"])


def _uses(types: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){name}\b", types) is not None


def _class_name(sig: Signature) -> str:
    """``QuestionContextToAnswer`` from the field names (at most three per side)."""
    def camel(names: tuple[str, ...]) -> str:
        return "".join(n.replace("_", " ").title().replace(" ", "") for n in names[:3])

    name = f"{camel(sig.input_names)}To{camel(sig.output_names)}"
    return name if name.isidentifier() and name.isascii() else "MySignature"
