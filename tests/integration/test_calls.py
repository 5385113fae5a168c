"""predict / chain_of_thought / react through the router: validation in the kernel, DSPy in a
worker of the general pool, answers cached natively."""

import pytest

import dspex_lab
from dspex_lab import telemetry
from dspex_lab.errors import LMError, SignatureError, ValidationError
from dspex_lab.usage import cost_of


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def routes(operation):
    return [e.fields["route"] for e in telemetry.get_bus().snapshot("call")
            if e.fields["operation"] == operation]


def test_predict_runs_in_a_worker_then_hits_the_cache(dspy_lm, lm_server):
    telemetry.clear()
    first = dspex_lab.predict("question -> answer", question="What is the capital of France?",
                              lm=dspy_lm)
    assert first.answer == "Paris"
    info = first._dspex
    assert (info.route, info.cached) == ("pool", False)
    stats = lm_server.stats()
    assert (info.prompt_tokens, info.completion_tokens) == (stats["prompt_tokens"],
                                                            stats["completion_tokens"])
    assert info.cost == pytest.approx(cost_of(info.model, info.prompt_tokens,
                                              info.completion_tokens))
    again = dspex_lab.predict("question -> answer", question="What is the capital of France?",
                              lm=dspy_lm)
    assert again.answer == "Paris" and again._dspex.route == "native" and again._dspex.cached
    assert (again._dspex.prompt_tokens, again._dspex.cost) == (0, 0.0)  # a hit spends nothing
    assert lm_server.stats()["requests"] == stats["requests"]  # no second LM call
    assert routes("predict") == ["pool", "native"]


def test_typed_outputs_are_validated_and_typed(dspy_lm):
    pred = dspex_lab.predict("question -> answer: int, sure: bool", question="What is 6 * 7?",
                             lm=dspy_lm, cache=False)
    assert pred.answer == 42 and isinstance(pred.sure, bool)


def test_chain_of_thought_has_reasoning(dspy_lm):
    pred = dspex_lab.chain_of_thought("question -> answer: int", question="What is 12 - 5?",
                                      lm=dspy_lm, cache=False)
    assert pred.answer == 7 and isinstance(pred.reasoning, str) and pred.reasoning
    assert pred._dspex.operation == "chain_of_thought"


def test_react_calls_a_tool_defined_here_in_the_worker(dspy_lm, lm_server):
    pred = dspex_lab.react("question -> answer: int", tools=[add], question="What is 20 + 22?",
                           lm=dspy_lm, cache=False)
    assert pred.answer == 42
    assert "add" in str(pred.trajectory)


def test_bad_inputs_fail_in_the_kernel_before_any_lm_call(dspy_lm, lm_server):
    before = lm_server.stats()["requests"]
    with pytest.raises(ValidationError) as info:
        dspex_lab.predict("question: str, n: int -> answer", question=3, n="three", lm=dspy_lm)
    assert {field for field, _ in info.value.problems} == {"question", "n"}
    with pytest.raises(ValidationError, match="context"):
        dspex_lab.predict("question, context -> answer", question="q", lm=dspy_lm)
    with pytest.raises(SignatureError, match=r"\^"):
        dspex_lab.predict("question answer", question="q", lm=dspy_lm)
    assert lm_server.stats()["requests"] == before


def test_inline_native_implementation_runs_in_the_kernel(dspy_lm):
    pred = dspex_lab.predict("question -> answer", question="What is 2 + 3?", lm=dspy_lm,
                             implementation="native", cache=False)
    assert pred.answer == "5" and pred._dspex.route == "native" and not pred._dspex.cached


def test_lm_failure_is_a_clear_lm_error_and_is_not_cached(dspy_lm, lm_server):
    for _ in range(2):  # the failure is not cached: the second call reaches the LM again
        with pytest.raises(LMError, match=r"The LM call to openai/.* failed") as info:
            dspex_lab.predict("question -> answer", question="Boom [[fail:500]]", lm=dspy_lm)
        assert info.value.status == 500 and info.value.retryable
    assert lm_server.stats()["requests"] == 2
    last = telemetry.get_bus().snapshot("call")[-1]
    assert last.fields["error"].startswith("LMError: The LM call")


def test_single_calls_record_in_the_worker_and_replay_with_the_server_stopped(tmp_path):
    from dspex_lab.testing import make_lm, running_server

    log = tmp_path / "single.lmlog"
    question = "What is the capital of Japan? (recorded)"
    with running_server() as own:
        lm = make_lm(own)
        dspex_lab.predict("question -> answer", question=question, lm=lm)  # now cached
        with dspex_lab.record(log):  # recording calls the LM even for a cached answer
            live = dspex_lab.predict("question -> answer", question=question, lm=lm)
        assert own.stats()["requests"] == 2 and live._dspex.route == "pool"
    assert log.read_text().count("\n") == 1  # written by the worker
    with dspex_lab.replay(log):
        again = dspex_lab.predict("question -> answer", question=question, lm=lm, cache=False)
    assert again.answer == live.answer == "Tokyo" and again._dspex.route == "pool"
    assert again._dspex.prompt_tokens == live._dspex.prompt_tokens
