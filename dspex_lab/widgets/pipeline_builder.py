"""``PipelineBuilder``: a widget over a ``PipelineDraft`` to assemble a pipeline step by step.

Add steps (a DSPy module on a signature, a function from the notebook, a parallel group, a
condition), reorder or remove them, see the pipeline's graph and its code, and try it on a
sample row. The try runs in a background thread, so the notebook stays usable.

    >>> builder = PipelineBuilder(name="qa", sample={"question": "What is 2 + 3?"})
    >>> builder.add_step("dspy", signature="question -> answer", module="cot")
    >>> builder                                  # displays the builder
    >>> builder.pipeline                         # the Pipeline
    >>> print(builder.to_code())
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from dspex_lab.errors import DspexError
from dspex_lab.widgets._ui import code_html, error_html, icon_button, user_namespace
from dspex_lab.widgets.pipeline_draft import STEP_KINDS, PipelineDraft

__all__ = ["PipelineBuilder"]

# which form fields each step kind uses
_FORM_FIELDS = {"dspy": ("module", "signature", "name"),
                "native": ("function", "output", "name"),
                "parallel": ("module", "branches", "name"),
                "when": ("condition", "module", "signature", "name")}


class PipelineBuilder(w.VBox):
    """A pipeline editor; see the module docstring. ``draft`` is the model.

    ``namespace`` is where native steps' functions are looked up (default: the notebook's);
    ``sample`` a dict or DataFrame (first row) to try the pipeline on; ``run_options`` go to
    ``Pipeline.run`` for tries (e.g. ``{"lm": "fast"}``, ``{"implementation": "native"}``).
    """

    def __init__(self, name: str = "pipeline", *, draft: PipelineDraft | None = None,
                 namespace: Mapping[str, Any] | None = None, sample: Any = None,
                 run_options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        ns = user_namespace() if namespace is None else namespace
        self.draft = draft or PipelineDraft(name=name, namespace=ns)
        self.run_options = dict(run_options or {})
        self.last_result: Any = None
        self._try_thread: threading.Thread | None = None
        self.steps_box = w.VBox()
        self.form = self._make_form()
        self.status = w.HTML()
        self.graph_view = w.HTML()
        self.code_view = w.HTML()
        self.sample = w.Textarea(_sample_text(sample), placeholder='{"question": "..."}',
                                 layout=w.Layout(width="98%", height="70px"))
        self.try_button = w.Button(description="Try on sample", icon="play")
        self.try_button.on_click(lambda _b: self.try_sample())
        self.try_view = w.HTML()
        tabs = w.Tab(children=[self.graph_view, self.code_view,
                               w.VBox([self.sample, self.try_button, self.try_view])])
        for i, title in enumerate(("Graph", "Code", "Try")):
            tabs.set_title(i, title)
        super().__init__([w.HTML("<b>Steps</b>"), self.steps_box, self.form, self.status, tabs],
                         **kwargs)
        self.add_class("dspex-pipeline-builder")
        self._rebuild()

    # -- the model's view ------------------------------------------------------------------------
    @property
    def pipeline(self) -> Any:
        """The ``Pipeline`` (raises ``PipelineError`` while a step or the wiring is wrong)."""
        return self.draft.pipeline

    def to_code(self, variable: str = "pipeline") -> str:
        """The Python code that builds the pipeline drafted so far."""
        return self.draft.to_code(variable)

    # -- actions ---------------------------------------------------------------------------------
    def add_step(self, kind: str = "dspy", **attrs: Any) -> None:
        """Add a step (see ``StepDraft``); the form's Add button calls this."""
        self.draft.add(kind, **attrs)
        self._rebuild()

    def remove_step(self, index: int) -> None:
        """Remove the step at ``index`` and redraw."""
        self.draft.remove(index)
        self._rebuild()

    def move_step(self, index: int, offset: int) -> None:
        """Move the step at ``index`` by ``offset`` places and redraw."""
        self.draft.move(index, offset)
        self._rebuild()

    def try_sample(self, wait: bool = False) -> None:
        """Run the pipeline on the sample row in a background thread (``wait=True`` joins it);
        the result (or the error) shows under the Try tab and in ``last_result``."""
        try:
            row = json.loads(self.sample.value or "{}")
            if not isinstance(row, dict):
                raise ValueError("the sample must be a JSON object")
        except ValueError as exc:
            self.try_view.value = error_html([f"The sample is not a JSON object of field "
                                              f"values ({exc}); write e.g. "
                                              '{"question": "What is 2 + 3?"}.'])
            return
        self.try_view.value = "<i>running…</i>"
        self.try_button.disabled = True
        self._try_thread = threading.Thread(target=self._run_try, args=(row,), daemon=True,
                                            name="dspex-pipeline-try")
        self._try_thread.start()
        if wait:
            self._try_thread.join()

    def _run_try(self, row: dict[str, Any]) -> None:
        try:
            result = self.last_result = self.draft.try_row(row, **self.run_options)
            self.try_view.value = result._repr_html_()
        except Exception as exc:  # shown to the user, never raised from a thread
            self.last_result = exc
            self.try_view.value = error_html([f"{type(exc).__name__}: {exc}"])
        finally:
            self.try_button.disabled = False

    # -- rendering -------------------------------------------------------------------------------
    def _make_form(self) -> w.VBox:
        self.kind = w.ToggleButtons(options=STEP_KINDS, value="dspy",
                                    tooltips=["DSPy module on a signature", "notebook function",
                                              "branches run side by side",
                                              "run only when a field is true"])
        self.inputs = {
            "module": w.Dropdown(options=["predict", "cot"], value="predict",
                                 description="module"),
            "signature": w.Text(placeholder="question -> answer", description="signature"),
            "function": w.Combobox(options=self._functions(), placeholder="function name",
                                   description="function", ensure_option=False),
            "output": w.Text(placeholder="output field (optional)", description="output"),
            "branches": w.Textarea(placeholder="one signature per line", description="branches"),
            "condition": w.Text(placeholder="field name", description="when"),
            "name": w.Text(placeholder="optional", description="step name"),
        }
        self.add_button = w.Button(description="Add step", icon="plus", button_style="primary")
        self.add_button.on_click(lambda _b: self._add_from_form())
        self.kind.observe(lambda _c: self._show_form_fields(), "value")
        self._show_form_fields()
        return w.VBox([self.kind, *self.inputs.values(), self.add_button],
                      layout=w.Layout(border="1px solid #ddd", padding="4px", margin="4px 0"))

    def _functions(self) -> list[str]:
        """Python functions of the namespace (what a native step can use)."""
        return sorted(n for n, v in self.draft.namespace.items()
                      if inspect.isfunction(v) and not n.startswith("_"))

    def _show_form_fields(self) -> None:
        wanted = _FORM_FIELDS[self.kind.value]
        for key, widget in self.inputs.items():
            widget.layout.display = "" if key in wanted else "none"
        self.inputs["function"].options = self._functions()

    def _add_from_form(self) -> None:
        kind = self.kind.value
        values = {k: self.inputs[k].value for k in _FORM_FIELDS[kind]}
        if "branches" in values:
            values["branches"] = [b for b in values["branches"].splitlines() if b.strip()]
        self.add_step(kind, **values)
        for key in ("signature", "output", "branches", "condition", "name"):
            self.inputs[key].value = ""

    def _rebuild(self) -> None:
        rows = []
        for i, step in enumerate(self.draft.steps):
            label = w.HTML(f"<code>{i + 1}. {_escape(step.describe())}</code>",
                           layout=w.Layout(flex="1 1 auto"))
            rows.append(w.HBox([
                label,
                icon_button("arrow-up", "Move up", lambda i=i: self.move_step(i, -1)),
                icon_button("arrow-down", "Move down", lambda i=i: self.move_step(i, 1)),
                icon_button("times", "Remove", lambda i=i: self.remove_step(i))]))
        self.steps_box.children = rows or [w.HTML("<i>no steps yet: add one below</i>")]
        self._refresh()

    def _refresh(self) -> None:
        pipeline, errors = None, []
        if self.draft.steps:
            try:
                pipeline = self.draft.pipeline
            except DspexError as exc:
                errors = [str(exc)]
        self.status.value = error_html(errors) if self.draft.steps else ""
        if pipeline is None:
            self.graph_view.value = self.code_view.value = ""
            return
        self.graph_view.value = pipeline._repr_html_()
        self.code_view.value = code_html(pipeline.to_code())
        if not self.sample.value.strip():
            self.sample.value = json.dumps(dict.fromkeys(pipeline.inputs, ""))


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _sample_text(sample: Any) -> str:
    """A sample row as JSON: a dict, or the first row of a DataFrame."""
    if sample is None:
        return ""
    if hasattr(sample, "iloc"):
        sample = sample.iloc[0].to_dict() if len(sample) else {}
    return json.dumps(dict(sample), default=str)
