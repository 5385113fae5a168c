"""Triage (failed rows by cause, prompts, retries merged back) and the FailureTriage widget."""

import concurrent.futures as cf

import dspy
import pandas as pd
import pytest
from dspy.utils.exceptions import AdapterParseError

import dspex_lab.batch as batch
from dspex_lab.cache import ResultCache, set_cache
from dspex_lab.errors import ConfigurationError
from dspex_lab.lm.config import EMBEDDED_MODEL, LMSpec
from dspex_lab.testing import running_server
from dspex_lab.widgets.failure_triage import FailureTriage
from dspex_lab.widgets.triage import CAUSES, Triage, classify_error, render_prompt, row_cause

PARSE = " ".join(str(AdapterParseError("ChatAdapter", dspy.Signature("question -> answer"),
                                       "I think it is 4")).split())

# Error texts as batch.run writes them (taken from real runs against the embedded server).
ERRORS = {
    "LMRateLimitError: [openai/dspex-embedded] Rate limit reached (injected by the dspex-lab "
    "LM server).": "rate_limit",
    "RateLimitError: litellm.RateLimitError: 429 Too Many Requests": "rate_limit",
    "LMTransportError: [openai/dspex-embedded] read timed out waiting for headers": "timeout",
    "TimeoutError: the call took longer than 60 s": "timeout",
    "TaskTimeout: the task ran past its timeout": "timeout",
    f"AdapterParseError: {PARSE}": "parse",
    "ValidationError: 1 problem with the outputs:\n  - answer: expected int, got str 'x'":
        "parse",
    "ValidationError: 1 problem with the inputs:\n  - q: expected int, got str 'x'": "input",
    "LMServerError: [openai/dspex-embedded] The server had an error (internal_error)":
        "exception",
    "LMTransportError: server closed connection before sending response": "exception",
    "ZeroDivisionError: division by zero": "exception",
    "Interrupted: the run was interrupted before this row ran.": "not_run",
    "NotRun: the run stopped (interrupted) before this row ran.": "not_run",
    "BudgetExceeded: not run; the run stopped at $0.0100": "not_run",
    "CircuitOpen: the LM kept failing": "not_run",
}


STATUS = {"input": "invalid", "not_run": "not_run"}  # cause -> the status the run writes
CALL_ERRORS = {e: c for e, c in ERRORS.items() if c not in STATUS}


@pytest.mark.parametrize(("error", "cause"), CALL_ERRORS.items())
def test_classify_error(error, cause):
    assert classify_error(error) == cause
    assert row_cause("error", error) == cause


@pytest.mark.parametrize(("error", "cause"), [(e, c) for e, c in ERRORS.items() if c in STATUS])
def test_rows_without_a_call_are_known_by_their_status_not_their_text(error, cause):
    assert row_cause(STATUS[cause], error) == cause
    assert row_cause("error", error) != cause  # the text alone says nothing of how it ran


def test_error_type_decides_before_the_text():
    assert classify_error("the provider said no", "RateLimitError") == "rate_limit"
    assert classify_error("no reply", "APITimeoutError") == "timeout"
    assert row_cause("ok") is None and row_cause("cached") is None


@pytest.mark.parametrize("ok", [None, float("nan")])
def test_rows_without_error_have_no_cause(ok):
    assert classify_error(ok) is None


def synthetic_frame():
    errors = list(ERRORS)
    return pd.DataFrame({"question": [f"q{i}" for i in range(len(errors) + 2)],
                         "answer": [None] * len(errors) + ["a", "b"],
                         "error": [*errors, None, None],
                         "latency_ms": 1.0,
                         "status": [STATUS.get(ERRORS[e], "error") for e in errors] + ["ok"] * 2},
                        index=range(100, 100 + len(errors) + 2))


def test_groups_counts_rows_and_inputs():
    t = Triage(synthetic_frame(), "question -> answer")
    counts = t.counts()
    assert list(counts) == [c for c in CAUSES if c in counts]  # display order
    assert counts == {"parse": 2, "rate_limit": 2, "timeout": 3, "input": 1, "not_run": 4,
                      "exception": 3}
    parse = t.groups()["parse"][0]
    assert (parse.position, parse.label, parse.inputs) == (5, 105, {"question": "q5"})
    assert parse.response == "I think it is 4"
    assert t.groups()["timeout"][0].response is None
    assert t.rows("input") == [7]
    with pytest.raises(ConfigurationError, match="Unknown cause"):
        t.rows("nope")


def test_prompt_is_what_the_adapter_sends():
    t = Triage(synthetic_frame(), "question -> answer")
    prompt = t.prompt(t.groups()["parse"][0])
    assert "[system]" in prompt and "[user]" in prompt and "q5" in prompt
    assert "`answer`" in prompt
    assert render_prompt("question -> answer", {"question": "hi"}, adapter="json") != \
        render_prompt("question -> answer", {"question": "hi"})
    assert Triage(synthetic_frame()).prompt(parse_row := t.failed()[0]) is None, parse_row


def test_triage_needs_a_result_frame_and_a_program_to_retry():
    with pytest.raises(ConfigurationError, match="error"):
        Triage(pd.DataFrame({"x": [1]}))
    t = Triage(synthetic_frame())
    with pytest.raises(ConfigurationError, match="program"):
        t.retry([0])
    assert t.retry([]) is t.frame


# -- retries against the embedded server ----------------------------------------------------------

@pytest.fixture(scope="module")
def env():
    with running_server(retry_after_s=0.01) as server, cf.ThreadPoolExecutor(2) as pool:
        yield server, pool, LMSpec(EMBEDDED_MODEL, {"api_base": server.url, "api_key": "x"})


@pytest.fixture
def failed_run(env):
    server, pool, spec = env
    set_cache(ResultCache(path=None))
    server.reset()
    df = pd.DataFrame({"question": ["What is 1 + 1?", "[[fail:once:500]] What is 2 + 2?",
                                    "[[fail:429]] What is 3 + 3?", "[[fail:once:500]] 4 + 4?"],
                       "answer": list("wxyz")}, index=[10, 11, 12, 13])
    out = batch.run("question -> answer", df, lm=spec, pool=pool, progress=False,
                    retry=batch.RetryPolicy(max_retries=0), circuit_breaker=False)
    yield out, pool, spec
    set_cache(None)


def test_retry_merges_new_results_into_the_frame_in_place(failed_run):
    out, pool, spec = failed_run
    assert "answer_pred" in out.columns  # the input had an 'answer' column already
    t = Triage(out, "question -> answer", pool=pool)
    assert t.counts() == {"rate_limit": 1, "exception": 2}
    before_ok = out.iloc[0].copy()
    frame = t.retry(t.rows("exception") + t.rows("rate_limit"), lm=spec, temperature=0.3)
    assert frame is out
    assert out["answer_pred"].tolist()[:2] == ["2", "4"] and out["answer_pred"].iloc[3] == "8"
    assert out["answer"].tolist() == list("wxyz")  # the input column is untouched
    assert pd.isna(out["error"].iloc[1]) and pd.isna(out["error"].iloc[3])
    assert classify_error(out["error"].iloc[2]) == "rate_limit"
    assert out["prompt_tokens"].iloc[1] > 0 and str(out["prompt_tokens"].dtype) == \
        "int64[pyarrow]"
    assert out.iloc[0].equals(before_ok)
    assert t.counts() == {"rate_limit": 1}
    assert out.attrs["retries"] == [{"rows": 3, "fixed": 2, "lm": EMBEDDED_MODEL,
                                     "temperature": 0.3, "adapter": None}]


def test_widget_groups_shows_details_and_retries(failed_run):
    out, pool, spec = failed_run
    view = FailureTriage(out, program="question -> answer", pool=pool, lm=spec)
    assert [v for _label, v in view.cause.options] == ["rate_limit", "exception"]
    assert view.cause.options[1][0] == "exceptions (2)"
    view.select("exception")
    assert view.rows.value == (1, 3)
    assert "row 11" in view.detail.value and "prompt" in view.detail.value
    view.retry_button.click()
    view._thread.join(60)
    assert "2 fixed, 1 failed row(s) left" in view.status.value
    assert [v for _label, v in view.cause.options] == ["rate_limit"]
    view.select("rate_limit")
    view.temperature.value = "warm"
    view.retry_button.click()
    assert "not a number" in view.status.value
    view.temperature.value = "0.9"
    view.retry(wait=True)
    assert "0 fixed" in view.status.value and out.attrs["retries"][-1]["temperature"] == 0.9


def test_widget_with_nothing_to_triage():
    frame = pd.DataFrame({"question": ["q"], "answer": ["a"], "error": [None],
                          "status": ["ok"]})
    view = FailureTriage(frame, program="question -> answer")
    assert view.cause.options == () and "no failed rows" in view.detail.value
    view.retry_button.click()
    assert "Select the rows" in view.status.value


def test_widget_shows_the_trace_of_a_failed_row(failed_run):
    out, pool, spec = failed_run
    view = FailureTriage(out, program="question -> answer", pool=pool, lm=spec)
    view.trace_button.click()
    assert "Select a row" in view.trace_view.value
    view.select("rate_limit")
    view.trace_button.click()
    assert "Trace of row 12" in view.trace_view.value
    assert "[[fail:429]] What is 3 + 3?" in view.trace_view.value  # the prompt sent
    trace = view.show_trace()
    assert trace.row["status"] == "error" and "RateLimit" in trace.attempts[0]["error"]
