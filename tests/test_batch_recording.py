"""Record/replay of LM traffic: keys, the file, and the DSPy hook (no pool involved)."""

import dspy
import pytest

from dspex_lab.batch import recording
from dspex_lab.errors import ConfigurationError, LMError
from dspex_lab.testing import running_server


def test_request_keys_ignore_credentials_addresses_and_timeouts():
    msgs = [{"role": "user", "content": "hi"}]
    a = recording.request_key("openai/m", msgs, {"api_base": "http://a", "api_key": "k",
                                                 "temperature": 0.0, "timeout": 5})
    b = recording.request_key("openai/m", msgs, {"api_base": "http://b", "temperature": 0.0,
                                                 "max_tokens": None})
    assert a == b
    assert a != recording.request_key("openai/m", msgs, {"temperature": 0.7})


def test_store_appends_lines_and_reads_them_back(tmp_path):
    cfg = recording.ReplayConfig("replay", str(tmp_path / "log.jsonl"))
    store = recording.store(cfg)
    store.append("k1", recording.text_entry("m", "hello", 3, 1))
    fresh = recording._Store(cfg.path)
    assert recording.entry_text(fresh.get("k1")) == "hello"
    assert fresh.get("nope") is None


def test_strict_replay_of_an_unknown_request_is_an_error(tmp_path):
    cfg = recording.ReplayConfig("replay", str(tmp_path / "empty.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(LMError, match="No recorded response"):
        recording.lookup(cfg, "k", "openai/m", [{"role": "user", "content": "x"}])
    loose = recording.ReplayConfig("replay", cfg.path, strict=False)
    assert recording.lookup(loose, "k", "openai/m", []) is None


def test_replay_needs_an_existing_file(tmp_path):
    with pytest.raises(ConfigurationError, match="record"):
        recording.replay(tmp_path / "missing.jsonl")


def test_dspy_calls_in_this_process_replay_without_the_server(tmp_path):
    path = tmp_path / "calls.lmlog"
    with running_server() as server:
        lm = server.lm(num_retries=0)
        predict = dspy.Predict("question -> answer")
        with recording.record(path), dspy.context(lm=lm):
            live = predict(question="What is 2 + 3?").answer
    assert path.read_text().count("\n") == 1
    with recording.replay(path), dspy.context(lm=lm), dspy.track_usage() as usage:
        again = predict(question="What is 2 + 3?").answer
    assert again == live == "5"
    assert usage.get_total_tokens()[lm.model]["prompt_tokens"] > 0
    assert recording.current() is None
