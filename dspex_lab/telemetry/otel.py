"""Optional OpenTelemetry export: one span per ``call``, ``lm.call`` and ``pipeline.step`` event
(a batch's columnar ``lm.calls`` event gives one span per call).

Needs ``opentelemetry-sdk`` (not a dependency of dspex_lab: ``pip install opentelemetry-sdk``
plus an exporter). Each event becomes a finished span named after what it measured
(``dspex predict``, ``dspex lm openai/gpt-4o-mini``, ``dspex step answer``), timed from the
event's time back by its ``latency_ms``; fields become ``dspex.*`` attributes (plus the GenAI
conventions ``gen_ai.request.model`` and ``gen_ai.usage.input_tokens/output_tokens``), and an
``error`` sets the span status to ERROR.

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor, ConsoleSpanExporter
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    >>> stop = export_to_otel(provider)      # from now on, every call is a span
    >>> stop()                               # unsubscribe

Spans are created in the thread that emits the event: give the provider a
``BatchSpanProcessor`` (not ``SimpleSpanProcessor``) so that exporting never slows a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.telemetry.bus import CALLS, Event, per_call, subscribe

__all__ = ["DEFAULT_KINDS", "export_to_otel", "span_name"]

DEFAULT_KINDS = ("call", "lm.call", "pipeline.step")
_GENAI = {"model": "gen_ai.request.model", "prompt_tokens": "gen_ai.usage.input_tokens",
          "completion_tokens": "gen_ai.usage.output_tokens"}


def span_name(event: Event) -> str:
    """``dspex <operation>`` / ``dspex lm <model>`` / ``dspex step <step>``."""
    f = event.fields
    if event.kind == "lm.call":
        return f"dspex lm {f.get('model') or '?'}"
    if event.kind == "pipeline.step":
        return f"dspex step {f.get('step') or '?'}"
    return f"dspex {f.get('operation') or event.kind}"


def export_to_otel(tracer_provider: Any = None, kinds: Iterable[str] = DEFAULT_KINDS
                   ) -> Callable[[], None]:
    """Turn telemetry events of ``kinds`` into OpenTelemetry spans on ``tracer_provider``
    (default: the global provider); returns the function that stops the export.

    Raises ``ConfigurationError`` when OpenTelemetry is not installed.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode
    except ImportError:
        raise ConfigurationError("OpenTelemetry export needs the opentelemetry packages; "
                                 "install them with: pip install opentelemetry-sdk") from None
    from dspex_lab import __version__

    provider = tracer_provider or trace.get_tracer_provider()
    tracer = provider.get_tracer("dspex_lab", __version__)
    wanted = frozenset(kinds)

    def on_event(event: Event) -> None:
        if event.kind == CALLS and "lm.call" in wanted:
            for call in per_call(event):
                on_event(call)
            return
        if event.kind not in wanted:
            return
        end = int(event.ts * 1e9)
        latency = event.fields.get("latency_ms")
        start = end - int(float(latency) * 1e6) if _finite(latency) else end
        span = tracer.start_span(span_name(event), start_time=start,
                                 attributes=attributes(event))
        error = event.fields.get("error")
        if error:
            span.set_status(Status(StatusCode.ERROR, str(error)[:300]))
        span.end(end_time=end)

    return subscribe(on_event)


def attributes(event: Event) -> dict[str, Any]:
    """Span attributes: ``dspex.kind`` and ``dspex.<field>`` for every scalar field, plus the
    GenAI names for model and tokens. None values are left out; other values become text."""
    out: dict[str, Any] = {"dspex.kind": event.kind}
    for key, value in event.fields.items():
        if value is None:
            continue
        if not isinstance(value, bool | int | float | str):
            value = str(value)
        out[f"dspex.{key}"] = value
        if key in _GENAI:
            out[_GENAI[key]] = value
    return out


def _finite(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and abs(number) != float("inf")
