"""``dspex_lab.redaction``: the one function that masks secrets everywhere."""

from __future__ import annotations

import pyarrow as pa

from dspex_lab import redaction, telemetry
from dspex_lab.lm import LMSpec


def test_a_remembered_secret_is_masked_anywhere_in_text_and_nested_values():
    redaction.remember({"api_key": "remembered-key-0001", "model": "openai/not-a-secret"})
    text = "HTTP 401: 'remembered-key-0001' is wrong (model openai/not-a-secret)"
    assert redaction.redact_text(text) == "HTTP 401: '***' is wrong (model openai/not-a-secret)"
    assert redaction.redact({"detail": [text], "api_key": "x"}) == {
        "detail": [redaction.redact_text(text)], "api_key": "***"}


def test_short_keys_are_masked_under_their_names_only():
    redaction.remember({"api_key": "x"})
    assert redaction.redact_text("x marks the spot") == "x marks the spot"
    assert redaction.redact({"api_key": "x"}) == {"api_key": "***"}


def test_lm_specs_and_provider_environment_variables_are_known_secrets(monkeypatch):
    LMSpec("openai/m", {"api_key": "spec-key-123456789", "api_base": "http://h"})
    monkeypatch.setenv("SOMEPROVIDER_API_KEY", "env-key-987654321")
    redaction.remember(["another-secret-value"])       # (re-reads the environment)
    text = "spec-key-123456789 env-key-987654321 http://h"
    assert redaction.redact_text(text) == "*** *** http://h"


def test_key_like_text_is_masked_without_being_known():
    assert redaction.redact_text("Authorization: Bearer abcdefgh1234") == "Authorization: ***"
    assert redaction.redact_text("key sk-proj-abcdefghij") == "key ***"


def test_exceptions_and_their_causes_are_masked_in_place():
    redaction.remember(["chained-secret-abc123"])
    try:
        try:
            raise ValueError("the key chained-secret-abc123 was refused")
        except ValueError as inner:
            raise RuntimeError("outer chained-secret-abc123") from inner
    except RuntimeError as exc:
        caught = redaction.redact_exception(exc)
    assert str(caught) == "outer ***" and str(caught.__cause__) == "the key *** was refused"


def test_telemetry_masks_known_secrets_in_fields_and_call_tables():
    redaction.remember(["table-secret-xyz789"])
    table = pa.table({"error": ["401 table-secret-xyz789", None], "row": [0, 1]})
    event = telemetry.emit("lm.calls", calls=table, note="saw table-secret-xyz789")
    assert event.fields["note"] == "saw ***"
    assert event.fields["calls"].column("error").to_pylist() == ["401 ***", None]
