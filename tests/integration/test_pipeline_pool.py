"""Pipelines end to end on the worker pool and the embedded LM: the acceptance pipeline (native +
DSPy, parallel, when, map) on one input and over a 500-row DataFrame, faults, streaming, and
an optimizer run in a worker (the warm ``general`` pool, to keep the test fast)."""

import sys

import cloudpickle
import dspy
import pandas as pd
import pydantic
import pytest

from dspex_lab import batch
from dspex_lab.errors import PipelineError
from dspex_lab.native.templates import template
from dspex_lab.optimize import optimize
from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when

# The native steps below are test-module functions: send them to workers by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def clean(question: str) -> str:
    return " ".join(question.split())


def needs_review(state) -> bool:
    return "[[review]]" in state["question"]


def score(answer: str, note: list) -> float:
    return float(len(answer) + len(note))


def acceptance() -> Pipeline:
    return Pipeline([
        native(clean, output="question"),
        parallel(dspy_step("question -> answer", module="cot"),
                 native(template("Q: {question}"), output="prompt"), timeout=60, name="fan"),
        map("facts", dspy_step("fact -> note"), as_="fact", name="notes_per_fact"),
        when(needs_review, dspy_step("question, answer -> review"), name="check"),
        native(score),
    ], name="acceptance")


def test_single_input_runs_dspy_steps_in_the_pool(dspy_lm):
    p = acceptance()
    r = p(question="  What is   the capital of France? [[review]]",
          facts=["What is 2 + 3?", "What is 6 * 7?"], lm=dspy_lm, cache=False)
    assert r.ok, r.errors
    assert r.answer == "Paris" and r.prompt.startswith("Q: What is the capital")
    assert r.note == ["5", "42"] and r.review and r.score == 5 + 2
    routes = {s.name: s.route for s in r.trace}
    assert routes["clean"] == routes["prompt"] == routes["score"] == "native"
    assert routes["answer"] == routes["review"] == "pool"
    assert r.step("notes_per_fact").route == "pool"
    assert r.tokens > 0 and r.cost > 0
    assert [s.name for s in r.trace if s.depth == 0] == [
        "clean", "fan", "notes_per_fact", "check", "score"]


def test_batch_run_over_500_rows(dspy_lm):
    rows = 500
    df = pd.DataFrame({
        "question": [f"What is {i} + {i % 7}?" + (" [[review]]" if i % 50 == 0 else "")
                     for i in range(rows)],
        "facts": [[f"What is {i} * 2?"] for i in range(rows)],
    })
    out = batch.run(acceptance(), df, lm=dspy_lm, progress=False, cache=False, max_retries=0)
    assert len(out) == rows and out["error"].isna().all(), out["error"].dropna().head()
    assert out["answer"].tolist() == [str(i + i % 7) for i in range(rows)]
    assert out["note"].tolist()[:3] == [["0"], ["2"], ["4"]]
    assert out["review"].notna().sum() == rows // 50
    assert (out["prompt_tokens"] > 0).all()


def inverse(x: float) -> float:
    return 1 / x


def test_batch_rows_whose_native_step_fails_name_the_step(dspy_lm):
    p = Pipeline([native(inverse), dspy_step("question -> answer")], name="inv")
    df = pd.DataFrame({"x": [1.0, 0.0, 4.0], "question": ["What is 2 + 3?"] * 3})
    out = batch.run(p, df, lm=dspy_lm, progress=False, cache=False, max_retries=0)
    assert out["inverse"].tolist()[::2] == [1.0, 0.25] and out["answer"].tolist()[::2] == ["5"] * 2
    errors = out["error"].tolist()
    assert pd.isna(errors[0]) and pd.isna(errors[2])
    assert "Step 'inverse' (native) failed: ZeroDivisionError" in errors[1]


def test_continue_on_error_with_a_failing_lm_call(dspy_lm):
    p = acceptance()
    r = p(question="What is 2 + 3? [[fail:500]]", facts=["What is 1 + 1?"], lm=dspy_lm,
          cache=False, continue_on_error=True)
    errors = {e.name: e for e in r.errors}
    assert set(errors) == {"answer", "score"}
    assert "server had an error" in errors["answer"].error
    assert errors["score"].status == "skipped"
    assert r.note == ["2"] and r.prompt == "Q: What is 2 + 3? [[fail:500]]"
    with pytest.raises(PipelineError) as err:
        p(question="What is 2 + 3? [[fail:500]]", facts=[], lm=dspy_lm, cache=False)
    assert err.value.step == "answer"


def test_stream_from_the_pool(dspy_lm):
    p = Pipeline([native(clean, output="question"), dspy_step("question -> answer"),
                  dspy_step("answer -> summary")])
    stream = p.stream(question="What is 6 * 7?", lm=dspy_lm, cache=False)
    assert [(s.name, s.route) for s in stream] == [
        ("clean", "native"), ("answer", "pool"), ("summary", "pool")]
    assert stream.result.answer == "42"


def test_optimize_in_a_pool_then_demos_back(dspy_lm):
    p = Pipeline([native(clean, output="question"), dspy_step("question -> answer")],
                 name="qa")
    train = pd.DataFrame([{"question": f"What is {a} + {b}?", "answer": str(a + b)}
                          for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]])
    compiled = optimize(p, train, "exact_match", "BootstrapFewShot", lm=dspy_lm, pool="general",
                        progress=False, max_bootstrapped_demos=2, max_labeled_demos=0)
    assert compiled.demos == 2
    better = p.with_dspy_state(compiled)
    assert better.step("answer").demo_count == 2
    assert better(question="What is 10 + 5?", lm=dspy_lm, cache=False).answer == "15"


def test_a_map_over_many_items_goes_through_batch_run(dspy_lm):
    p = Pipeline([map("questions", dspy_step("question -> answer: int"), name="each")])
    questions = [f"What is {i} + 1?" for i in range(20)] + ["What is 1 + 1? [[fail:500]]"]
    r = p(questions=questions, lm=dspy_lm, cache=False, continue_on_error=True)
    assert r.answer == [i + 1 for i in range(20)] + [None]
    each = r.step("each")
    assert each.detail == "21 items, batched, 1 failed" and each.route == "pool"
    assert len(each.children) == 21 and each.prompt_tokens > 0
    assert "server had an error" in each.children[-1].error
    with pytest.raises(PipelineError, match="failed for 1 of 21 items of map 'each'"):
        p(questions=questions, lm=dspy_lm, cache=False)


class Keywords(dspy.Module):
    """A custom module that returns a list, a dict and a pydantic model (one real LM call)."""

    def __init__(self):
        super().__init__()
        self.answer = dspy.Predict("question -> answer")

    def forward(self, question, limits):
        answer = self.answer(question=question).answer
        return dspy.Prediction(words=question.rstrip("?").split()[:limits["n"]],
                               stats={"chars": len(question), "answer": answer},
                               summary=Summary(answer=answer, words=len(question.split())))


class Summary(pydantic.BaseModel):
    answer: str
    words: int


def test_custom_module_outputs_keep_their_values_and_types(dspy_lm):
    step = dspy_step(Keywords(), inputs=["question", "limits"],
                     outputs=["words", "stats", "summary"], name="kw")
    p = Pipeline([step, native(lambda words: len(words), output="n_words", name="count")])
    for implementation in (None, "native"):          # a worker of the pool, and the kernel
        r = p(question="What is 2 + 3?", limits={"n": 3}, lm=dspy_lm, cache=False,
              implementation=implementation)
        assert r.ok, r.errors
        assert r.words == ["What", "is", "2"] and r.n_words == 3
        assert r.stats == {"chars": 14, "answer": "5"}
        assert r.summary == Summary(answer="5", words=5)
    assert r.step("kw").route == "native" and p(question="What is 1 + 1?", limits={"n": 1},
                                                 lm=dspy_lm).step("kw").route == "pool"
    # a declared type is still checked, and the code/JSON forms keep the declarations
    typed = dspy_step(Keywords(), inputs=["question", "limits: dict[str, int]"],
                      outputs=["words: list[int]", "stats", "summary"], name="kw")
    with pytest.raises(PipelineError, match=r"words\[0\]: expected int"):
        Pipeline([typed])(question="What is 2 + 3?", limits={"n": 1}, lm=dspy_lm)
    assert "inputs=['question', 'limits: dict[str, int]']" in Pipeline([typed]).to_code()
    loaded = Pipeline.from_dict(Pipeline([typed]).to_dict(allow_pickle=True), allow_pickle=True)
    assert str(loaded.step("kw").signature) == str(typed.signature)
