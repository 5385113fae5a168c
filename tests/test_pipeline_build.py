"""Build-time wiring checks: errors name the step and list what is available there."""

import pytest

from dspex_lab.errors import PipelineError
from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when


def clean(question: str) -> str:
    return question.strip()


def score(answer: str) -> float:
    return float(len(answer))


def test_inputs_and_outputs_are_inferred():
    p = Pipeline([native(clean, output="question"), dspy_step("question, context -> answer"),
                  native(score)])
    assert p.inputs == ("question", "context")
    assert p.outputs == ("answer", "score")
    assert str(p.signature) == "question: str, context -> answer, score: float"


def test_a_field_nobody_writes_is_an_error_when_inputs_are_declared():
    with pytest.raises(PipelineError) as err:
        Pipeline([dspy_step("question -> answer"), dspy_step("answer, contxt -> final")],
                 inputs=["question"])
    msg = str(err.value)
    assert err.value.step == "final"
    assert "'contxt'" in msg and "available: answer, question" in msg


def test_reading_a_field_written_later_is_an_error():
    with pytest.raises(PipelineError, match="written by step 'answer'") as err:
        Pipeline([native(score), dspy_step("question -> answer")])
    assert err.value.step == "score"


def test_a_step_may_update_an_input_field():
    p = Pipeline([native(clean, output="question"), dspy_step("question -> answer")])
    assert p.inputs == ("question",)


def test_parallel_branches_cannot_write_the_same_field():
    with pytest.raises(PipelineError, match="both write 'answer'") as err:
        Pipeline([parallel(dspy_step("question -> answer", name="a1"),
                           dspy_step("question -> answer", name="a2"), name="fan")])
    assert err.value.step == "fan"


def test_parallel_branches_do_not_see_each_other():
    with pytest.raises(PipelineError, match="another parallel branch") as err:
        Pipeline([parallel(dspy_step("question -> answer"), native(score))])
    assert err.value.step == "score"


def test_when_condition_field_must_exist():
    with pytest.raises(PipelineError, match="'needs_review'") as err:
        Pipeline([dspy_step("question -> answer"),
                  when("needs_review", dspy_step("answer -> review"), name="check")],
                 inputs=["question"])
    assert err.value.step == "check"


def test_when_outputs_written_by_one_branch_become_optional():
    p = Pipeline([dspy_step("question -> answer"),
                  when("answer", dspy_step("answer -> review: int"))])
    assert str(p.signature) == "question -> answer, review: int | None"


def test_map_item_is_visible_inside_and_outputs_become_lists():
    p = Pipeline([map("questions", dspy_step("question, topic -> answer: int"))])
    assert p.inputs == ("questions", "topic")
    assert str(p.signature) == "questions: Any, topic -> answer: list[int]"
    with pytest.raises(PipelineError) as err:
        Pipeline([map("questions", dspy_step("question -> answer"), name="each")],
                 inputs=["qs"])
    assert err.value.step == "each" and "'questions'" in str(err.value)


def test_declared_outputs_must_be_written():
    p = Pipeline([dspy_step("question -> answer"), native(score)], outputs=["answer"])
    assert p.outputs == ("answer",)
    with pytest.raises(PipelineError, match="'final'"):
        Pipeline([dspy_step("question -> answer")], outputs=["final"])


def test_names_are_made_unique_and_checked():
    p = Pipeline([dspy_step("q -> answer"), dspy_step("answer -> answer2", name="answer"),
                  parallel(native(score), dspy_step("answer -> x")),
                  parallel(dspy_step("answer -> y"))])
    names = [s.name for s in p.steps]
    assert names == ["answer", "answer_2", "parallel", "parallel_2"]
    with pytest.raises(PipelineError, match="not a valid Python identifier"):
        Pipeline([dspy_step("q -> a", name="my step")])


def test_builder_returns_new_checked_pipelines():
    base = Pipeline(name="qa").then("question -> answer")
    longer = base.then(native(score)).when("score", "answer -> review")
    assert len(base) == 1 and len(longer) == 3
    assert longer.step("review").reads == ("answer",)
    with pytest.raises(PipelineError) as err:
        base.then(dspy_step("answer, missing -> x", name="bad")).then(
            dspy_step("answer -> missing", name="late"))
    assert err.value.step == "bad"


def test_replace_and_nesting_a_pipeline():
    inner = Pipeline([dspy_step("question -> answer"), native(score)], name="inner")
    outer = Pipeline([native(clean, output="question"), inner], name="outer")
    assert [s.name for s in outer.steps] == ["clean", "inner"]
    assert outer.step("score").writes == ("score",)
    swapped = outer.replace("score", native(lambda answer: 1.0, output="score"))
    assert swapped.step("score").fn(answer="x") == 1.0
    assert outer.without("clean").inputs == ("question",)
    with pytest.raises(PipelineError, match="no step 'nope'"):
        outer.step("nope")
