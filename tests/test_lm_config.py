"""LM configuration: configure(), get_lm(), named LMs, the embedded default, LMSpec, telemetry."""

from __future__ import annotations

import pickle

import dspy
import pytest

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError
from dspex_lab.lm import (
    EMBEDDED_MODEL,
    LMSpec,
    TelemetryCallback,
    configure,
    embedded_server,
    get_lm,
    install_callback,
    lm_spec,
    named_lms,
    reset,
    resolve,
    resolve_model,
)

SECRET = "sk-test-abcdefghijklmnop"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "MISTRAL_API_KEY", "GROQ_API_KEY", "DSPEX_LM"):
        monkeypatch.delenv(var, raising=False)
    previous = dspy.settings.lm              # another test's global LM must not leak in
    dspy.configure(lm=None)
    reset()
    telemetry.clear()
    yield
    reset()
    dspy.configure(lm=previous)


def test_embedded_default_with_one_notice(capsys):
    lm = get_lm()
    assert lm.model == EMBEDDED_MODEL and lm.kwargs["api_base"] == embedded_server().url
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'dspex_lab.configure(lm="openai/gpt-4o-mini")' in err
    assert get_lm() is lm and lm_spec().kwargs["api_base"] == embedded_server().url
    assert capsys.readouterr().err == ""              # said once
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="What is 2 + 3?").answer == "5"


def test_provider_key_in_environment_picks_that_provider(monkeypatch, capsys):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert get_lm().model == "anthropic/claude-3-5-haiku-latest"
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY" in err and SECRET not in err


def test_dspex_lm_variable_and_users_dspy_lm_are_honoured(monkeypatch):
    monkeypatch.setenv("DSPEX_LM", "gpt-4o-mini")
    assert get_lm().model == "openai/gpt-4o-mini"
    reset()
    mine = dspy.LM("openai/my-model", api_key="x")
    with dspy.context(lm=mine):
        assert get_lm() is mine


def test_configure_model_string_with_kwargs_and_alias():
    configure(lm="gpt-4o-mini", api_key=SECRET, temperature=0.2)
    lm = get_lm()
    assert lm.model == "openai/gpt-4o-mini" and lm.kwargs["temperature"] == 0.2
    assert dspy.settings.lm is lm                      # plain DSPy code uses it too
    configure(max_tokens=300)                          # kwargs alone update the default
    assert get_lm().kwargs["max_tokens"] == 300 and get_lm().kwargs["temperature"] == 0.2
    reset()
    assert dspy.settings.lm is None


def test_named_lms_and_unknown_name():
    configure(lms={"fast": "openai/gpt-4o-mini",
                   "strong": {"model": "anthropic/claude-3-5-sonnet-latest", "max_tokens": 900},
                   "local": "ollama_chat/llama3", "offline": "embedded"})
    assert get_lm("fast").model == "openai/gpt-4o-mini"
    assert get_lm("strong").kwargs["max_tokens"] == 900
    assert get_lm("local").model == "ollama_chat/llama3"
    assert get_lm("offline").kwargs["api_base"] == embedded_server().url
    assert get_lm("fast") is get_lm("fast")
    assert named_lms() == {"fast": "openai/gpt-4o-mini",
                           "local": "ollama_chat/llama3", "offline": "openai/dspex-embedded",
                           "strong": "anthropic/claude-3-5-sonnet-latest"}
    with pytest.raises(ConfigurationError) as info:
        get_lm("fsat")
    assert "'fast'" in str(info.value) and "'strong'" in str(info.value)
    configure(lms={"fast": None})
    with pytest.raises(ConfigurationError):
        get_lm("fast")
    assert "fast" not in named_lms()


def test_user_dspy_lm_instance_is_kept():
    mine = dspy.LM("openai/gpt-4o-mini", api_key=SECRET, temperature=0.7, cache=False)
    configure(lm=mine)
    assert get_lm() is mine
    spec = lm_spec()
    assert spec.model == "openai/gpt-4o-mini" and spec.kwargs["temperature"] == 0.7
    assert spec.kwargs["cache"] is False and spec.build().kwargs["api_key"] == SECRET


@pytest.mark.parametrize(("value", "message"), [
    ("llama3", "ollama_chat/llama3"),
    ({"temperature": 0}, "no 'model'"),
    (42, "Cannot use int"),
])
def test_bad_lm_values_explain_the_fix(value, message):
    with pytest.raises(ConfigurationError, match=message):
        configure(lm=value)


def test_kwargs_without_any_default_is_an_error():
    with pytest.raises(ConfigurationError, match="pass the model too"):
        configure(temperature=0.1)


def test_resolve_accepts_every_form():
    configure(lms={"fast": "gpt-4o-mini"})
    assert resolve("fast").model == "openai/gpt-4o-mini"
    assert resolve("anthropic/claude-3-5-haiku-latest").model.startswith("anthropic/")
    assert resolve({"model": "gpt-4o", "temperature": 0}).kwargs == {"temperature": 0}
    assert resolve(dspy.LM("openai/x", api_key="k")).model == "openai/x"
    assert resolve("embedded").kwargs["api_key"] == "dspex-local"
    assert resolve_model("claude-3-5-haiku-latest") == "anthropic/claude-3-5-haiku-latest"


def test_lm_spec_hides_keys_pickles_and_hashes():
    spec = LMSpec("openai/gpt-4o-mini", {"api_key": SECRET, "temperature": 0,
                                         "extra_headers": {"Authorization": f"Bearer {SECRET}"}})
    for text in (repr(spec), str(spec), f"{spec}", repr([spec])):
        assert SECRET not in text and "***" in text
    clone = pickle.loads(pickle.dumps(spec))
    assert clone == spec and hash(clone) == hash(spec) and clone.kwargs["api_key"] == SECRET
    assert {spec: 1}[clone] == 1
    assert spec.build().kwargs["api_key"] == SECRET


# -- telemetry ----------------------------------------------------------------------------------

def test_every_lm_call_emits_one_event_with_tokens_matching_the_server():
    lm = get_lm()
    server = embedded_server()
    server.reset()
    install_callback()                                # global AND on the LM: still one event
    try:
        with dspy.context(lm=lm):
            dspy.Predict("question -> answer")(question="What is 9 - 4?")
    finally:
        dspy.configure(callbacks=[c for c in dspy.settings.callbacks
                                  if not isinstance(c, TelemetryCallback)])
    events = telemetry.events("lm.call")
    assert len(events) == 1
    row = events.iloc[0]
    stats = server.stats()
    assert row["model"] == EMBEDDED_MODEL and row["latency_ms"] > 0
    assert (row["prompt_tokens"], row["completion_tokens"]) == (stats["prompt_tokens"],
                                                                stats["completion_tokens"])
    from dspex_lab.usage import cost_of

    expected = cost_of(EMBEDDED_MODEL, stats["prompt_tokens"], stats["completion_tokens"])
    assert row["cost"] == pytest.approx(expected) and row["cost"] > 0
    assert not row["cached"] and row["error"] is None


def test_cache_hits_and_errors_are_reported_without_secrets():
    base = embedded_server().url
    configure(lm="openai/dspex-embedded", api_base=base, api_key=SECRET, cache=True,
              num_retries=0)
    lm = get_lm()
    lm("What is 2 + 2? (cache me)")
    lm("What is 2 + 2? (cache me)")
    with pytest.raises(Exception):  # noqa: B017 - the DSPy error type is checked below
        lm(f"[[fail:500]] my key is {SECRET}")
    events = telemetry.events("lm.call")
    assert list(events["cached"]) == [False, True, False]
    assert "LMServerError" in events["error"].iloc[2]
    assert SECRET not in events.to_string() and SECRET not in repr(lm_spec())


def test_a_failing_telemetry_bus_never_breaks_the_call(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("telemetry is down")

    monkeypatch.setattr(telemetry, "emit", broken)
    assert get_lm()("What is 1 + 1?") == ["2"]


def test_install_callback_is_idempotent():
    lm = dspy.LM("openai/x", api_key="k")
    assert install_callback(lm) is install_callback(lm)
    assert sum(isinstance(c, TelemetryCallback) for c in lm.callbacks) == 1


def test_embedded_server_can_run_in_its_own_process(monkeypatch, capsys):
    monkeypatch.setenv("DSPEX_EMBEDDED_SERVER", "process")
    server = embedded_server()
    assert server.mode == "process" and embedded_server() is server
    assert get_lm()("What is 4 * 5?") == ["20"]
    reset()
    assert not server.running
