"""OpenTelemetry export (skipped unless ``opentelemetry-sdk`` is installed: it is optional)."""

import pytest

from dspex_lab import telemetry
from dspex_lab.telemetry.otel import span_name

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is optional")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from dspex_lab.telemetry.otel import export_to_otel  # noqa: E402


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = export_to_otel(provider)
    yield exporter
    stop()


def test_calls_steps_and_lm_calls_become_spans(spans):
    telemetry.emit("call", operation="predict", route="pool", model="openai/m",
                   latency_ms=250.0, prompt_tokens=12, completion_tokens=3, cost=0.001,
                   cached=False, error=None)
    telemetry.emit("lm.call", model="openai/m", latency_ms=40.0, prompt_tokens=5,
                   completion_tokens=1, cost=0.0, error="LMRateLimitError: 429")
    telemetry.emit("pipeline.step", pipeline="qa", step="answer", status="ok",
                   latency_ms=12.5, route="native")
    telemetry.emit("run.progress", rows_done=3)  # not exported
    done = spans.get_finished_spans()
    assert [s.name for s in done] == ["dspex predict", "dspex lm openai/m", "dspex step answer"]
    call = done[0]
    assert (call.end_time - call.start_time) == pytest.approx(250e6, rel=1e-6)
    assert call.attributes["dspex.route"] == "pool"
    assert call.attributes["gen_ai.request.model"] == "openai/m"
    assert call.attributes["gen_ai.usage.input_tokens"] == 12
    assert "dspex.error" not in call.attributes
    assert done[1].status.status_code is StatusCode.ERROR
    assert "429" in done[1].status.description


def test_export_stops():
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = export_to_otel(provider, kinds=["call"])
    telemetry.emit("call", operation="predict", latency_ms=1.0)
    telemetry.emit("lm.call", model="m", latency_ms=1.0)
    stop()
    telemetry.emit("call", operation="predict", latency_ms=1.0)
    assert [s.name for s in exporter.get_finished_spans()] == ["dspex predict"]


def test_span_names():
    assert span_name(telemetry.Event("call", 0.0, {})) == "dspex call"
