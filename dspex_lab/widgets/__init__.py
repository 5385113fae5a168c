"""Notebook widgets: views over plain models that also work without Jupyter.

    >>> from dspex_lab.widgets import SignatureBuilder, BatchRunner, TelemetryDashboard
    >>> SignatureBuilder("question -> answer")              # compose a signature
    >>> PipelineBuilder(sample={"question": "2 + 3?"})      # assemble and try a pipeline
    >>> BatchRunner(data=df, program="question -> answer")  # run, watch, cancel
    >>> FailureTriage(result, program="question -> answer") # failed rows by cause, retry
    >>> dashboard()                                         # live telemetry charts

=====================  =====================  ===========================================
widget                 model                  module
=====================  =====================  ===========================================
``SignatureBuilder``   ``SignatureDraft``     ``signature_builder`` / ``signature_draft``
``PipelineBuilder``    ``PipelineDraft``      ``pipeline_builder`` / ``pipeline_draft``
``BatchRunner``        ``BatchJob``           ``batch_runner`` / ``batch_job``
``FailureTriage``      ``Triage``             ``failure_triage`` / ``triage``
``TelemetryDashboard`` ``DashboardStats``     ``dashboard`` / ``dashboard_stats`` (+ ``figures``)
=====================  =====================  ===========================================

Names load lazily: importing this package imports neither ipywidgets nor plotly.
"""

from __future__ import annotations

from dspex_lab._lazy import lazy_exports

_EXPORTS = {
    "SignatureBuilder": "dspex_lab.widgets.signature_builder",
    "SignatureDraft": "dspex_lab.widgets.signature_draft",
    "FieldDraft": "dspex_lab.widgets.signature_draft",
    "PipelineBuilder": "dspex_lab.widgets.pipeline_builder",
    "PipelineDraft": "dspex_lab.widgets.pipeline_draft",
    "StepDraft": "dspex_lab.widgets.pipeline_draft",
    "BatchRunner": "dspex_lab.widgets.batch_runner",
    "BatchJob": "dspex_lab.widgets.batch_job",
    "FailureTriage": "dspex_lab.widgets.failure_triage",
    "Triage": "dspex_lab.widgets.triage",
    "classify_error": "dspex_lab.widgets.triage",
    "TelemetryDashboard": "dspex_lab.widgets.dashboard",
    "DashboardStats": "dspex_lab.widgets.dashboard_stats",
}

# ``dashboard`` is both the module and the function: the module is callable (see dashboard.py)

__all__ = sorted([*_EXPORTS, "dashboard"])


__getattr__, __dir__ = lazy_exports(
    __name__, _EXPORTS, submodules={"dashboard": "dspex_lab.widgets.dashboard"})
