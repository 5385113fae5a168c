"""``SignatureBuilder``: a widget over a ``SignatureDraft`` to compose a signature by hand.

Add, remove and reorder input and output fields, pick their types, write descriptions and
instructions. Every edit re-validates with the parser (its message and caret are shown, and
the field the caret points into is outlined); the signature text and the equivalent Python
code update live.

    >>> builder = SignatureBuilder("question -> answer")
    >>> builder                                  # displays the editor
    >>> builder.signature                        # the Signature (SignatureError while invalid)
    signature('question -> answer')

``builder.value`` (a trait) holds the current text, so ``builder.observe(cb, "value")`` works.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import traitlets

from dspex_lab.signatures import Signature
from dspex_lab.widgets._ui import code_html, error_html, icon_button
from dspex_lab.widgets.signature_draft import TYPE_CHOICES, FieldDraft, Kind, SignatureDraft

__all__ = ["SignatureBuilder"]

_ERROR_BORDER = "1px solid #d33"


class SignatureBuilder(w.VBox):
    """An editor for a signature; see the module docstring. ``draft`` is the model."""

    value = traitlets.Unicode("", help="The signature text (valid or not).")
    valid = traitlets.Bool(False, help="Whether the signature parses.")

    def __init__(self, text: str | Signature = "question -> answer",
                 instructions: str | None = None, *, draft: SignatureDraft | None = None,
                 **kwargs: Any) -> None:
        if draft is None:
            draft = (SignatureDraft.from_signature(text) if isinstance(text, Signature)
                     else SignatureDraft.from_text(text, instructions))
        self.draft = draft
        self._boxes = {"input": w.VBox(), "output": w.VBox()}
        self._rows: dict[Kind, list[w.HBox]] = {"input": [], "output": []}
        self.instructions = w.Textarea(draft.instructions, placeholder="Instructions (optional)",
                                       layout=w.Layout(width="98%", height="60px"))
        self.instructions.observe(self._on_instructions, "value")
        self.status = w.HTML()
        self.text_view = w.HTML()
        self.code_view = w.HTML()
        adders = {kind: w.Button(description=f"+ {kind}", tooltip=f"Add an {kind} field")
                  for kind in ("input", "output")}
        adders["input"].on_click(lambda _b: self.add_field("input"))
        adders["output"].on_click(lambda _b: self.add_field("output"))
        self.add_buttons = adders
        views = w.Tab(children=[self.text_view, self.code_view])
        views.set_title(0, "Signature")
        views.set_title(1, "Python")
        super().__init__([
            w.HTML("<b>Inputs</b>"), self._boxes["input"], adders["input"],
            w.HTML("<b>Outputs</b>"), self._boxes["output"], adders["output"],
            self.instructions, self.status, views], **kwargs)
        self.add_class("dspex-signature-builder")
        self._rebuild()

    # -- the model's view ------------------------------------------------------------------------
    @property
    def signature(self) -> Signature:
        """The ``Signature`` being built (raises ``SignatureError`` while invalid)."""
        return self.draft.signature

    @property
    def errors(self) -> list[str]:
        """The parser's messages for the current text (empty when valid)."""
        return self.draft.errors

    def to_code(self) -> str:
        """The equivalent Python code (see ``SignatureDraft.to_code``)."""
        return self.draft.to_code()

    # -- actions (also what the buttons do) ------------------------------------------------------
    def add_field(self, kind: Kind, name: str = "", type: str = "str",
                  description: str = "") -> None:
        """Add a field (an empty name until typed in) and refresh."""
        self.draft.add(kind, name, type, description)
        self._rebuild()

    def remove_field(self, kind: Kind, index: int) -> None:
        """Remove an input or output field and redraw."""
        self.draft.remove(kind, index)
        self._rebuild()

    def move_field(self, kind: Kind, index: int, offset: int) -> None:
        """Move an input or output field by ``offset`` places and redraw."""
        self.draft.move(kind, index, offset)
        self._rebuild()

    # -- rendering -------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Recreate the field rows (after a structural change), then refresh."""
        for kind in ("input", "output"):
            rows = [self._row(kind, i, f) for i, f in enumerate(self.draft.side(kind))]
            self._rows[kind] = rows
            self._boxes[kind].children = rows
        self._refresh()

    def _row(self, kind: Kind, index: int, f: FieldDraft) -> w.HBox:
        name = w.Text(f.name, placeholder="name", layout=w.Layout(width="160px"))
        kind_box = w.Combobox(value=f.type, options=TYPE_CHOICES, ensure_option=False,
                              placeholder="type", layout=w.Layout(width="170px"))
        desc = w.Text(f.description, placeholder="description",
                      layout=w.Layout(flex="1 1 auto"))

        def edit(attr: str):
            def on_change(change: dict[str, Any]) -> None:
                setattr(f, attr, change["new"])
                self._refresh()
            return on_change

        name.observe(edit("name"), "value")
        kind_box.observe(edit("type"), "value")
        desc.observe(edit("description"), "value")
        buttons = [icon_button("arrow-up", "Move up", lambda: self.move_field(kind, index, -1)),
                   icon_button("arrow-down", "Move down",
                               lambda: self.move_field(kind, index, 1)),
                   icon_button("times", "Remove", lambda: self.remove_field(kind, index))]
        row = w.HBox([name, kind_box, desc, *buttons], layout=w.Layout(width="98%"))
        row.add_class("dspex-field-row")
        return row

    def _on_instructions(self, change: dict[str, Any]) -> None:
        self.draft.instructions = change["new"]
        self._refresh()

    def _refresh(self) -> None:
        """Validate and update the status, the text and the code views."""
        errors = self.draft.errors
        bad = self.draft.error_field if errors else None
        for kind, rows in self._rows.items():
            for i, row in enumerate(rows):
                row.layout.border = _ERROR_BORDER if bad == (kind, i) else ""
        self.status.value = error_html(errors)
        self.text_view.value = code_html(self.draft.text)
        self.code_view.value = code_html(self.draft.to_code() if not errors else
                                         "# fix the signature to see its code")
        self.valid = not errors
        self.value = self.draft.text
