"""The LM server's logic without HTTP: faults, latency, usage, stats, options, streaming events."""

from __future__ import annotations

import pytest

from dspex_lab.errors import ConfigurationError
from dspex_lab.lm_server import LMApp, ServerOptions, estimate_tokens
from dspex_lab.lm_server.options import decide_fault, delay_seconds


def _body(text: str, **extra):
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_markers_fail_always_once_or_n_times():
    opts = ServerOptions()
    assert decide_fault(opts, "k", "[[fail:429]] x", 5).kind == "429"
    once = [decide_fault(opts, "k", "[[fail:once:500]] x", a) for a in range(3)]
    assert [f and f.kind for f in once] == ["500", None, None]
    twice = [decide_fault(opts, "k", "[[fail:2:timeout]] x", a) for a in range(3)]
    assert [f and f.kind for f in twice] == ["timeout", "timeout", None]
    assert decide_fault(opts, "k", "no marker", 0) is None


def test_error_rate_is_deterministic_and_close_to_the_rate():
    opts = ServerOptions().with_changes(error_rate=0.3, error_kinds=["429", "drop"], seed=7)
    draws = [decide_fault(opts, f"prompt-{i}", "", 0) for i in range(2000)]
    again = [decide_fault(opts, f"prompt-{i}", "", 0) for i in range(2000)]
    assert draws == again
    failed = [d for d in draws if d is not None]
    assert 0.25 < len(failed) / len(draws) < 0.35
    assert {d.kind for d in failed} == {"429", "drop"}
    retried = [decide_fault(opts, f"prompt-{i}", "", 1) for i in range(2000)]
    assert retried != draws                      # a retry of the same prompt gets a new draw


def test_latency_jitter_and_latency_marker():
    opts = ServerOptions().with_changes(latency_ms=100, jitter_ms=50)
    delays = [delay_seconds(opts, f"k{i}", "") for i in range(200)]
    assert all(0.1 <= d <= 0.15 for d in delays) and len(set(delays)) > 100
    assert delays[0] == delay_seconds(opts, "k0", "")
    assert delay_seconds(opts, "k", "[[latency:250]]") == 0.25


@pytest.mark.parametrize(("changes", "message"), [
    ({"latency": 5}, "Unknown LM server option 'latency'"),
    ({"error_rate": 2}, "between 0 and 1"),
    ({"error_kinds": ["404"]}, "must list some of"),
    ({"latency_ms": -1}, ">= 0"),
    ({"responder": 3}, "callable"),
    ({"rules": [{"match": "("}]}, "Cannot load the rules"),
    ({"request_limit": 2.5}, "whole number"),
    ({"limit_window_s": 0}, "> 0"),
    ({"ratelimit_headers": "yes"}, "True or False"),
])
def test_option_validation_names_the_value(changes, message):
    with pytest.raises(ConfigurationError, match=message):
        ServerOptions().with_changes(**changes)


def test_usage_matches_estimate_and_stats_accumulate():
    app = LMApp()
    reply = app.chat(_body("What is 2 + 3?", n=3))
    usage = reply.payload["usage"]
    assert usage["prompt_tokens"] == estimate_tokens("What is 2 + 3?")
    assert usage["completion_tokens"] == 3 * estimate_tokens("5")
    assert [c["message"]["content"] for c in reply.payload["choices"]] == ["5", "5", "5"]
    app.chat(_body("[[fail:429]]"))
    stats = app.stats()
    assert (stats["requests"], stats["ok"], stats["errors"]) == (2, 1, {"429": 1})
    assert stats["prompt_tokens"] == usage["prompt_tokens"]
    assert stats["models"] == {"m": 2}
    app.reset()
    assert app.stats()["requests"] == 0
    app.configure(latency_ms=5, error_rate=0.5)
    app.reset(options=True)
    assert app.options == ServerOptions()


def test_429_reply_has_retry_after_and_openai_error_body():
    app = LMApp(ServerOptions().with_changes(retry_after_s=2.5))
    reply = app.chat(_body("[[fail:429]] hi"))
    assert reply.status == 429 and reply.headers["Retry-After"] == "2.5"
    assert reply.payload["error"]["type"] == "rate_limit_error"
    assert app.chat(_body("[[fail:timeout]]")).fault == "timeout"


def test_a_request_limit_refills_evenly_and_reports_itself_in_headers(monkeypatch):
    import dspex_lab.lm_server.app as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    app = LMApp(ServerOptions().with_changes(request_limit=3, limit_window_s=1.5))
    replies = [app.chat(_body(f"What is {i} + 1?")) for i in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == ["2", "1", "0", "0"]
    assert replies[0].headers["x-ratelimit-limit-requests"] == "3"
    assert replies[2].headers["x-ratelimit-reset-requests"] == "1.500s"  # empty: 1.5 s to full
    assert replies[3].headers["Retry-After"] == "0.500"  # one request comes back every 0.5 s
    assert "3 requests per 1.5 s" in replies[3].payload["error"]["message"]
    now[0] += 0.5
    assert app.chat(_body("again")).status == 200
    assert app.stats()["errors"] == {"429": 1} and app.stats()["ok"] == 4
    app.configure(ratelimit_headers=False)
    now[0] += 1.5
    quiet = app.chat(_body("quiet"))
    assert quiet.status == 200 and not any(k.startswith("x-ratelimit") for k in quiet.headers)


def test_max_tokens_cuts_the_completion_like_a_hosted_model():
    app = LMApp(ServerOptions().with_changes(
        rules=[{"match": "essay", "answer": "word " * 50}]))
    full = app.chat(_body("Write an essay.")).payload["choices"][0]
    assert full["finish_reason"] == "stop" and len(full["message"]["content"]) > 200
    cut = app.chat(_body("Write an essay.", max_tokens=5)).payload
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["choices"][0]["message"]["content"] == full["message"]["content"][:20]
    assert cut["usage"]["completion_tokens"] == 5
    newer = app.chat(_body("Write an essay.", max_completion_tokens=3)).payload
    assert newer["usage"]["completion_tokens"] == 3
    stream = app.chat(_body("Write an essay.", max_tokens=5, stream=True)).events
    assert stream[-1]["choices"][0]["finish_reason"] == "length"
    roomy = app.chat(_body("Write an essay.", max_tokens=4000)).payload
    assert roomy["choices"][0]["finish_reason"] == "stop"


def test_bad_body_and_failing_responder_are_reported_not_raised():
    def responder(prompt):
        raise RuntimeError("boom")

    app = LMApp(ServerOptions().with_changes(responder=responder))
    assert app.chat({"messages": "nope"}).status == 400
    reply = app.chat(_body("hi"))
    assert reply.status == 500 and "RuntimeError: boom" in reply.payload["error"]["message"]
    assert app.stats()["errors"] == {"bad_request": 1, "responder": 1}


def test_responder_by_import_string(tmp_path, monkeypatch):
    (tmp_path / "my_responder.py").write_text(
        "def answer(prompt):\n    return {'answer': prompt.question.upper()}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = LMApp(ServerOptions().with_changes(responder="my_responder:answer"))
    reply = app.chat(_body("shout"))
    assert reply.payload["choices"][0]["message"]["content"] == "SHOUT"
    with pytest.raises(ConfigurationError, match="Cannot import the responder"):
        ServerOptions().with_changes(responder="no_such_module:x").responder_callable()


def test_stream_events_rebuild_the_completion_and_carry_usage_when_asked():
    app = LMApp()
    plain = app.chat(_body("What is the capital of France?")).payload
    stream = app.chat(_body("What is the capital of France?", stream=True,
                            stream_options={"include_usage": True})).events
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in stream if e["choices"])
    assert text == plain["choices"][0]["message"]["content"] == "Paris"
    assert stream[-2]["choices"][0]["finish_reason"] == "stop"
    assert stream[-1]["usage"] == plain["usage"]
    no_usage = app.chat(_body("What is the capital of France?", stream=True)).events
    assert "usage" not in no_usage[-1]


def test_models_lists_default_and_seen_models():
    app = LMApp()
    app.chat({"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}]})
    ids = [m["id"] for m in app.models()["data"]]
    assert ids == ["dspex-embedded", "gpt-fake"]


def test_public_options_are_json_data():
    import json

    opts = ServerOptions().with_changes(rules=[{"match": "a", "answer": "b"}],
                                        responder=len)
    data = json.loads(json.dumps(opts.public()))
    assert data["rules"] == [{"match": "a", "answer": "b"}] and data["responder"] == "len"
