"""The embedded LM's knobs in one call: ``configure(embedded=...)`` (``%dspex_lm --latency``:
tests/test_magics.py)."""

from __future__ import annotations

import time

import dspy
import pytest

import dspex_lab
from dspex_lab.errors import ConfigurationError
from dspex_lab.lm.config import embedded_knobs, embedded_server, get_lm, reset


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "MISTRAL_API_KEY", "GROQ_API_KEY", "DSPEX_LM"):
        monkeypatch.delenv(var, raising=False)
    previous = dspy.settings.lm
    dspy.configure(lm=None)
    reset()
    yield
    reset()
    dspy.configure(lm=previous)


def test_configure_embedded_sets_the_running_server_and_a_later_one():
    dspex_lab.configure(embedded={"latency_ms": 150, "jitter_ms": 0, "error_rate": 0.0})
    assert embedded_server().options.latency_ms == 150
    lm = get_lm()
    start = time.perf_counter()
    lm("a slow question", cache=False)
    assert time.perf_counter() - start >= 0.15
    embedded_server().stop()               # a restarted server keeps the knobs
    assert embedded_knobs()["latency_ms"] == 150


def test_fault_knobs_reach_real_calls():
    dspex_lab.configure(embedded={"error_rate": 1.0, "error_kinds": ["500"]})
    lm = get_lm().copy(num_retries=0)
    with pytest.raises(Exception, match=r"(?i)server had an error"):
        lm("this one fails", cache=False)


@pytest.mark.parametrize("knobs, message", [
    ({"latency_ms": 40}, r"configure\(embedded=\{'latency_ms': 40\}\)"),
    ({"embedded": {"latncy_ms": 1}}, r"Unknown knob 'latncy_ms'.*latency_ms"),
    ({"embedded": {"error_rate": 3}}, r"error_rate must be between 0 and 1"),
    ({"embedded": {"error_kinds": ["boom"]}}, r"error_kinds|boom"),
    ({"embedded": [("latency_ms", 1)]}, r"takes a dict"),
])
def test_bad_knobs_name_the_knob_and_the_valid_ones(knobs, message):
    with pytest.raises(ConfigurationError, match=message):
        dspex_lab.configure(**knobs)
