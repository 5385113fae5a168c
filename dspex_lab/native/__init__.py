"""Native operations: they run in the kernel, with no IPC and no DSPy import.

Metrics (``exact_match``, ``f1``, ``accuracy``) and templates (``template``) are registered
with the router as native operations (``metric.exact_match``, ``metric.f1``,
``metric.accuracy``, ``template.render``), so they show up in routing telemetry.

    >>> from dspex_lab.native import exact_match, template
    >>> exact_match("Paris", ["paris", "Paris, France"])
    1.0
    >>> template("Answer about {topic}: {question}").render(topic="maths", question="2 + 3?")
    'Answer about maths: 2 + 3?'
"""

from dspex_lab.native.metrics import (
    Metric,
    accuracy,
    exact_match,
    f1,
    normalize_answer,
    to_text,
)
from dspex_lab.native.templates import Template, render_template, template

__all__ = [
    "Metric",
    "Template",
    "accuracy",
    "exact_match",
    "f1",
    "normalize_answer",
    "render_template",
    "template",
    "to_text",
]


def _register() -> None:
    from dspex_lab.router import register

    for metric in (exact_match, f1, accuracy):
        register(f"metric.{metric.name}", "native", metric.rows,
                 doc=f"{metric.name}: native metric, per-row scores of (preds, golds)")
    register("template.render", "native", render_template,
             doc="template.render: native, safe str.format-style rendering")


_register()
