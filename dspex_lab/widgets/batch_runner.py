"""``BatchRunner``: pick a DataFrame and a program, run it with a progress bar, cancel it, and
watch the results arrive (a view over ``BatchJob``).

The run happens in a background thread (``BatchJob``), so the Cancel button works and the
notebook stays usable; the bar and the live table refresh at most every ``interval`` seconds.

    >>> runner = BatchRunner(data=questions, program="question -> answer")
    >>> runner                        # press Run (or call runner.run())
    >>> runner.result                 # the result DataFrame once finished (or cancelled)
    >>> runner.triage()               # a FailureTriage of the failed rows

Without ``data``/``program`` the runner offers the notebook's DataFrames and takes a
signature, or the name of a notebook variable holding a program (a ``Pipeline``, a saved
``CompiledProgram``, a ``dspy.Module``).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from dspex_lab.batch import status as _status
from dspex_lab.batch.progress import STYLES, final_state
from dspex_lab.widgets._ui import Ticker, error_html, icon_button, table_html, user_namespace
from dspex_lab.widgets.batch_job import BatchJob, not_run

__all__ = ["BatchRunner"]


class BatchRunner(w.VBox):
    """A batch-run panel; see the module docstring. ``job`` is the current ``BatchJob``.

    ``run_options`` go to ``dspex_lab.batch.run`` (``lm``, ``pool``, ``concurrency``...).
    """

    def __init__(self, data: Any = None, program: Any = None, *, module: str = "predict",
                 namespace: Mapping[str, Any] | None = None, interval: float = 0.5,
                 live_rows: int = 10, **run_options: Any) -> None:
        self.namespace = user_namespace() if namespace is None else namespace
        self.data = data
        self.program = program
        self.run_options = run_options
        self.interval = interval
        self.live_rows = live_rows
        self.job: BatchJob | None = None
        self._ticker: Ticker | None = None
        self._seen = -1
        self._refreshing = threading.Lock()  # the ticker and the kernel both refresh
        self.data_picker = w.Dropdown(options=self._frames(), description="data")
        self.program_box = w.Combobox(
            value="" if program is None or not isinstance(program, str) else program,
            options=self._programs(), placeholder="question -> answer  (or a variable name)",
            description="program", ensure_option=False, layout=w.Layout(width="60%"))
        self.module_picker = w.Dropdown(options=["predict", "cot"], value=module,
                                        description="module")
        self.run_button = w.Button(description="Run", icon="play", button_style="primary")
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="danger",
                                      disabled=True)
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="0 / 0",
                                      layout=w.Layout(width="60%"))
        self.status = w.HTML()
        self.table = w.HTML()
        self.extra = w.VBox()
        pickers = [self.program_box, self.module_picker,
                   icon_button("refresh", "Re-read the notebook's DataFrames and programs",
                               self.refresh_choices)]
        if data is None:
            pickers.insert(0, self.data_picker)
        if program is not None and not isinstance(program, str):
            pickers = [p for p in pickers if p not in (self.program_box, self.module_picker)]
            pickers.append(w.HTML(f"program: <code>{html.escape(_short(program))}</code>"))
        super().__init__([w.HBox(pickers, layout=w.Layout(flex_flow="row wrap")),
                          w.HBox([self.run_button, self.cancel_button]),
                          w.HBox([self.progress, self.status]), self.table, self.extra])
        self.add_class("dspex-batch-runner")

    # -- actions ---------------------------------------------------------------------------------
    def run(self) -> BatchJob | None:
        """Start a run with the chosen data and program (what the Run button does); returns
        the ``BatchJob`` (None when the choice is incomplete: the status says why)."""
        if self.job is not None and self.job.running:
            self.status.value = error_html(["A run is in progress; cancel it first."])
            return None
        try:
            data, program = self._chosen_data(), self._chosen_program()
        except ValueError as exc:
            self.status.value = error_html([str(exc)])
            return None
        self.job = BatchJob(program, data, **self.run_options)
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self.extra.children = ()
        self.job.start()
        self._seen = -1
        self._ticker = Ticker(self.interval, self.refresh, name="dspex-batch-runner").start()
        self.refresh()
        return self.job

    def cancel(self) -> None:
        """Cancel the current run; its finished rows are kept."""
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.disabled = True
            self.refresh()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends; returns the result frame (see ``BatchJob.wait``)."""
        if self.job is None:
            return None
        result = self.job.wait(timeout)
        if not self.job.running:
            self.refresh()
        return result

    @property
    def result(self) -> Any:
        """The last run's result DataFrame (None before a run ends)."""
        return None if self.job is None else self.job.result

    def triage(self) -> Any:
        """A ``FailureTriage`` over the last result's failed rows (also shown below)."""
        from dspex_lab.widgets.failure_triage import FailureTriage

        if self.result is None:
            raise ValueError("There is no finished run to triage yet; press Run first.")
        view = FailureTriage(self.result, program=self.job.program if self.job else None,
                             **{k: v for k, v in self.run_options.items()
                                if k in ("pool", "lm")})
        self.extra.children = (view,)
        return view

    # -- rendering (called by the ticker, at a bounded rate) -------------------------------------
    def refresh(self) -> None:
        """Push the job's state to the bar, the status line and the live table."""
        with self._refreshing:
            job = self.job
            if job is not None and job.version != self._seen:
                self._seen = job.version
                self._show(job)

    def _show(self, job: BatchJob) -> None:
        self.progress.max = max(1, job.total)
        self.progress.value = min(job.done_rows, self.progress.max)
        self.progress.description = f"{job.done_rows:,} / {job.total:,}"
        state = job.state if job.running else final_state(job.state, job.errors)
        self.progress.bar_style = "info" if job.running else STYLES.get(state, "danger")
        line = (f"<b>{state}</b> · {job.errors:,} failed · {job.tokens:,} tokens · "
                f"${job.cost:,.4f} · {job.rows_per_s:,.1f} rows/s")
        if job.not_run:
            line += f" · {job.not_run:,} not run"
        if job.exception is not None:
            line += error_html([f"{type(job.exception).__name__}: {job.exception}"])
        self.status.value = line
        self.table.value = table_html(_rows_to_show(job, self.live_rows), self.live_rows)
        if not job.running:
            self._finished()

    def _finished(self) -> None:
        self.run_button.disabled, self.cancel_button.disabled = False, True
        if self._ticker is not None:
            self._ticker.stop(timeout=0)  # no join: the ticker may be waiting for our lock
        answered = (_status.OK, _status.CACHED)
        if self.result is not None and "status" in self.result and \
                not self.result["status"].isin(answered).all() and not self.extra.children:
            button = w.Button(description="Triage failures", icon="search")
            button.on_click(lambda _b: self.triage())
            self.extra.children = (button,)

    def close(self) -> None:
        """Stop the refresh timer and close the widget."""
        if self._ticker is not None:
            self._ticker.stop()
        super().close()

    # -- choices ---------------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        """Re-read the notebook's DataFrames and programs (defined after the runner)."""
        self.data_picker.options = self._frames()
        self.program_box.options = self._programs()

    def _frames(self) -> list[str]:
        import pandas as pd

        return sorted(n for n, v in self.namespace.items()
                      if isinstance(v, pd.DataFrame) and not n.startswith("_"))

    def _programs(self) -> list[str]:
        names = [n for n, v in self.namespace.items() if not n.startswith("_")
                 and hasattr(v, "__dspex_program__")]
        return sorted(names)

    def _chosen_data(self) -> Any:
        if self.data is not None:
            return self.data
        name = self.data_picker.value
        if not name or name not in self.namespace:
            raise ValueError("Choose a DataFrame (define one in the notebook, or pass "
                             "BatchRunner(data=df)).")
        return self.namespace[name]

    def _chosen_program(self) -> Any:
        if self.program is not None and not isinstance(self.program, str):
            return self.program
        text = (self.program_box.value or "").strip()
        if not text:
            raise ValueError("Write a signature such as 'question -> answer', or the name of a "
                             "notebook variable holding a program.")
        if text.isidentifier() and text in self.namespace:
            return self.namespace[text]
        from dspex_lab.programs import as_program

        return as_program(text, module=self.module_picker.value)


def _rows_to_show(job: BatchJob, limit: int) -> Any:
    """The live rows while running; the result after (its rows that ran, if cancelled)."""
    result = job.result
    if job.running or result is None:
        return job.live_frame(limit)
    if job.state == "cancelled" and "error" in result:
        return result[~not_run(result)]
    return result


def _short(program: Any, limit: int = 80) -> str:
    text = repr(program).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"
