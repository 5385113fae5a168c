"""``FailureTriage``: a run's failed rows grouped by cause, each with its error, prompt and
(when the error carries it) the LM's reply; retry the chosen rows with another LM, temperature
or adapter and merge the results back (a view over ``Triage``).

    >>> view = FailureTriage(df, program="question -> answer")    # df: a batch.run result
    >>> view                      # pick a cause, select rows, set the LM, press Retry
    >>> view.retry(lm="strong", temperature=0.7, wait=True)       # the same from code

Retries run in a background thread, so the notebook stays usable while they do.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as w

from dspex_lab.widgets._ui import code_html, error_html
from dspex_lab.widgets.triage import CAUSES, FailedRow, Triage

__all__ = ["FailureTriage"]

_ADAPTERS = [("default", None), ("chat", "chat"), ("json", "json"), ("xml", "xml")]


class FailureTriage(w.VBox):
    """The triage panel; ``model`` is the ``Triage``. Arguments are ``Triage``'s."""

    def __init__(self, frame: Any = None, program: Any = None, **triage_options: Any) -> None:
        self.model = Triage(frame, program, **triage_options)
        self._thread: threading.Thread | None = None
        self._by_position: dict[int, FailedRow] = {}
        self.cause = w.ToggleButtons(options=[], description="cause")
        self.cause.observe(lambda _c: self._show_rows(), "value")
        self.rows = w.SelectMultiple(options=[], rows=8, layout=w.Layout(width="98%"))
        self.rows.observe(lambda _c: self._show_detail(), "value")
        self.detail = w.HTML()
        self.lm = w.Text(placeholder="default LM", description="LM")
        self.temperature = w.Text(placeholder="default", description="temperature")
        self.adapter = w.Dropdown(options=_ADAPTERS, value=None, description="adapter")
        self.retry_button = w.Button(description="Retry selected", icon="redo",
                                     button_style="warning")
        self.retry_button.on_click(lambda _b: self.retry())
        self.trace_button = w.Button(description="Show trace", icon="list",
                                     tooltip="the row's LM calls: prompts, replies, attempts")
        self.trace_button.on_click(lambda _b: self.show_trace())
        self.trace_view = w.HTML()
        self.status = w.HTML()
        super().__init__([self.cause, self.rows, self.detail,
                          w.HBox([self.trace_button]), self.trace_view,
                          w.HBox([self.lm, self.temperature, self.adapter]),
                          w.HBox([self.retry_button, self.status])])
        self.add_class("dspex-failure-triage")
        self.refresh()

    # -- actions ---------------------------------------------------------------------------------
    def select(self, cause: str, positions: list[int] | None = None) -> None:
        """Show ``cause`` and select ``positions`` (all of its rows by default)."""
        self.cause.value = cause
        wanted = set(self.model.rows(cause) if positions is None else positions)
        self.rows.value = tuple(p for _label, p in self.rows.options if p in wanted)

    def retry(self, *, lm: Any = None, temperature: float | None = None,
              adapter: str | None = None, wait: bool = False) -> None:
        """Retry the selected rows (arguments override the form) in a background thread;
        ``wait=True`` blocks until done. The frame is updated in place, then the groups."""
        positions = list(self.rows.value)
        if not positions:
            self.status.value = error_html(["Select the rows to retry first."])
            return
        try:
            options = self._options(lm, temperature, adapter)
        except ValueError as exc:
            self.status.value = error_html([str(exc)])
            return
        self.retry_button.disabled = True
        self.status.value = f"<i>retrying {len(positions)} row(s)…</i>"
        self._thread = threading.Thread(target=self._run_retry, args=(positions, options),
                                        daemon=True, name="dspex-triage-retry")
        self._thread.start()
        if wait:
            self._thread.join()

    def show_trace(self, position: int | None = None) -> Any:
        """Show (and return) the trace of the row at ``position`` (default: the first
        selected row): its prompts, replies, attempts with their errors, timing and usage."""
        if position is None:
            chosen = [p for p in self.rows.value if p in self._by_position]
            if not chosen:
                self.trace_view.value = error_html(["Select a row to see its trace first."])
                return None
            position = chosen[0]
        row = self._by_position.get(position) or next(
            r for r in self.model.failed() if r.position == position)
        try:
            trace = self.model.trace(row)
        except Exception as exc:  # shown in the panel, never raised from a click
            self.trace_view.value = error_html([f"{type(exc).__name__}: {exc}"])
            return None
        self.trace_view.value = trace._repr_html_()
        return trace

    def _options(self, lm: Any, temperature: float | None, adapter: str | None
                 ) -> dict[str, Any]:
        text = self.temperature.value.strip()
        if temperature is None and text:
            try:
                temperature = float(text)
            except ValueError:
                raise ValueError(f"temperature {text!r} is not a number; write e.g. 0.7 or "
                                 "leave it empty for the default.") from None
        return {"lm": lm if lm is not None else (self.lm.value.strip() or None),
                "temperature": temperature,
                "adapter": adapter if adapter is not None else self.adapter.value}

    def _run_retry(self, positions: list[int], options: dict[str, Any]) -> None:
        try:
            before = len(self.model.failed())
            self.model.retry(positions, **options)
            after = len(self.model.failed())
            self.status.value = (f"retried {len(positions)} row(s): {before - after} fixed, "
                                 f"{after} failed row(s) left")
        except Exception as exc:  # shown, never raised from the thread
            self.status.value = error_html([f"{type(exc).__name__}: {exc}"])
        finally:
            self.retry_button.disabled = False
            self.refresh()

    # -- rendering -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Regroup the failed rows (after a retry or a change to the frame)."""
        counts = self.model.counts()
        current = self.cause.value
        self.cause.options = [(f"{CAUSES[c]} ({n})", c) for c, n in counts.items()]
        if counts:
            self.cause.value = current if current in counts else next(iter(counts))
        self._show_rows()

    def _show_rows(self) -> None:
        cause = self.cause.value
        if cause is None:
            self.rows.options = []
            self.detail.value = "<span style='color:#1a7f37'>&#10003; no failed rows</span>"
            return
        self._by_position = {r.position: r for r in self.model.failed() if r.cause == cause}
        self.rows.options = [(f"row {r.label}: {r.error[:90]}", r.position)
                             for r in self._by_position.values()]
        self._show_detail()

    def _show_detail(self) -> None:
        chosen = [self._by_position[p] for p in self.rows.value if p in self._by_position]
        self.detail.value = _detail_html(chosen[0], self.model) if chosen else \
            "<i>select a row to see its inputs, error and prompt</i>"


def _detail_html(row: FailedRow, model: Triage) -> str:
    inputs = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                     f"<td>{html.escape(str(v))[:500]}</td></tr>" for k, v in row.inputs.items())
    parts = [f"<b>row {html.escape(str(row.label))}</b> — {CAUSES[row.cause]}",
             f"<table>{inputs}</table>", code_html(row.error, "error")]
    prompt = model.prompt(row)
    if prompt:
        parts.append(f"<details><summary>prompt</summary>{code_html(prompt)}</details>")
    if row.response is not None:
        parts.append(code_html(row.response, "LM response"))
    return "".join(parts)
