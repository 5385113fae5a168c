"""How a ``dspy.Prediction`` looks in a notebook: its fields, the reasoning, and how the call
went (module, model, route, latency, tokens, cost) from its ``_dspex`` ``CallInfo``.

``%load_ext dspex_lab`` registers ``prediction_html`` as IPython's HTML formatter for
``dspy.Prediction`` (plain text stays DSPy's repr); ``PredictionView`` does the same for one
prediction anywhere (``display(PredictionView(pred))``).

    >>> pred = dspex_lab.predict("question -> answer", question="What is 2 + 3?")
    >>> PredictionView(pred)                  # a table "answer | 5" and a caption line
    >>> print(prediction_text(pred))
    answer: 5
    (predict · openai/dspex-embedded · pool · 74.2 ms · 149 + 12 tokens)
    >>> print(prediction_text(dspex_lab.predict("question -> answer", question="What is 2 + 3?")))
    answer: 5
    (predict · openai/dspex-embedded · native (cached from this session, just now) · 0.3 ms)
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display._html import box, cost, esc, meta_line, ms, table, value_text

__all__ = ["PredictionView", "call_caption", "prediction_html", "prediction_text"]

_TRACE_FIELDS = ("reasoning", "trajectory")


def _fields(pred: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trace fields such as reasoning, output fields), in the prediction's order."""
    items = dict(pred.items()) if hasattr(pred, "items") else dict(vars(pred))
    trace = {k: v for k, v in items.items() if k in _TRACE_FIELDS}
    outputs = {k: v for k, v in items.items() if k not in _TRACE_FIELDS}
    return trace, outputs


def call_caption(info: Any) -> list[str]:
    """The caption parts of a ``CallInfo``: module, model, route (a cached answer says from
    when: ``native (cached from an earlier session, 2 h ago)``), latency, tokens, cost."""
    if info is None:
        return []
    origin = getattr(info, "cache_origin", None)
    route = (f"{info.route} (cached {origin})" if origin else f"{info.route} (cached)"
             ) if info.cached else info.route
    tokens = (f"{info.prompt_tokens:,} + {info.completion_tokens:,} tokens"
              if info.prompt_tokens or info.completion_tokens else "")
    return [info.operation, info.model, route, ms(info.latency_ms), tokens, cost(info.cost)]


def prediction_html(pred: Any) -> str:
    """The HTML of a prediction: outputs as a table, reasoning muted above, a caption below."""
    trace, outputs = _fields(pred)
    parts = []
    for name, value in trace.items():
        parts.append('<div style="color:var(--jp-ui-font-color2,#666);margin-bottom:2px">'
                     f'<i>{esc(name)}:</i> <span style="white-space:pre-wrap">'
                     f"{esc(value_text(value))}</span></div>")
    parts.append(table(outputs.items()) if outputs else "<i>(no outputs)</i>")
    parts.append(meta_line(call_caption(getattr(pred, "_dspex", None))))
    return box("prediction", "".join(parts))


def prediction_text(pred: Any) -> str:
    """The plain-text form: one ``field: value`` line per field, then the caption."""
    trace, outputs = _fields(pred)
    lines = [f"{k}: {value_text(v)}" for k, v in {**trace, **outputs}.items()]
    caption = " · ".join(p for p in call_caption(getattr(pred, "_dspex", None)) if p)
    if caption:
        lines.append(f"({caption})")
    return "\n".join(lines)


class PredictionView:
    """A displayable wrapper around a ``dspy.Prediction`` (``.prediction`` is the original)."""

    def __init__(self, prediction: Any) -> None:
        self.prediction = prediction

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": prediction_text(self.prediction),
                "text/html": prediction_html(self.prediction)}

    def __repr__(self) -> str:
        return prediction_text(self.prediction)
