"""PipelineDraft (the model) and PipelineBuilder (the widget, driven in-process); tries run
DSPy inline against the embedded LM server."""

import json

import pytest

from dspex_lab.errors import PipelineError
from dspex_lab.pipeline import Pipeline, dspy_step, native, parallel, when
from dspex_lab.widgets.pipeline_builder import PipelineBuilder
from dspex_lab.widgets.pipeline_draft import PipelineDraft, StepDraft


def clean(question: str) -> str:
    return question.strip()


def needs_review(answer: str) -> bool:
    return len(answer) > 0


NS = {"clean": clean, "needs_review": needs_review, "x": 3}


def full_draft():
    draft = PipelineDraft(name="qa", namespace=NS)
    draft.add("native", function="clean", output="question")
    draft.add("dspy", signature="question -> answer", module="cot")
    draft.add("parallel", branches=["answer -> summary", "answer -> keywords: list[str]"])
    draft.add("native", function="needs_review")
    draft.add("when", condition="needs_review", signature="answer -> review")
    return draft


def test_draft_builds_the_same_pipeline_as_code():
    expected = Pipeline([
        native(clean, output="question"),
        dspy_step("question -> answer", "cot"),
        parallel(dspy_step("answer -> summary"), dspy_step("answer -> keywords: list[str]")),
        native(needs_review),
        when("needs_review", dspy_step("answer -> review")),
    ], name="qa")
    draft = full_draft()
    assert draft.errors == []
    assert draft.to_code() == expected.to_code()
    assert draft.pipeline.outputs == expected.outputs


def test_draft_reorder_surfaces_the_pipelines_wiring_error():
    draft = full_draft()
    assert draft.move(1, -1) == 0  # the answer step now reads 'question' first: still fine
    assert draft.errors == []
    draft.move(2, 2)  # the parallel group after needs_review: fine too
    draft.move(0, 4)  # 'answer' produced last: every reader breaks
    assert draft.errors and "answer" in draft.errors[0]
    with pytest.raises(PipelineError):
        draft.pipeline  # noqa: B018
    assert draft.remove(4).signature == "question -> answer"


@pytest.mark.parametrize(("step", "message"), [
    (StepDraft("native", function="nope"), "No function named 'nope'"),
    (StepDraft("native", function="x"), "No function named 'x'"),
    (StepDraft("dspy", signature=""), "needs a signature"),
    (StepDraft("parallel", branches=[" "]), "at least one branch"),
    (StepDraft("when", signature="a -> b"), "name of the field"),
    (StepDraft("dspy", signature="a -> "), "bad signature"),
])
def test_bad_steps_say_what_is_missing(step, message):
    draft = PipelineDraft(steps=[step], namespace=NS)
    assert message in draft.errors[0]


def test_unknown_step_kind_and_empty_draft():
    with pytest.raises(PipelineError, match="Unknown step kind"):
        StepDraft("loop")
    assert "no steps" in PipelineDraft().errors[0]


def test_try_row_runs_the_pipeline(dspy_lm):
    draft = PipelineDraft(namespace=NS)
    draft.add("native", function="clean", output="question")
    draft.add("dspy", signature="question -> answer")
    assert draft.sample_inputs() == {"question": ""}
    result = draft.try_row({"question": "  What is 2 + 3? ", "extra": 1}, lm=dspy_lm,
                           implementation="native")
    assert result.answer == "5" and result.question == "What is 2 + 3?"
    with pytest.raises(PipelineError, match="lacks the input field"):
        draft.try_row({}, lm=dspy_lm)


# -- the widget ---------------------------------------------------------------------------------

def test_builder_form_adds_steps_and_shows_graph_and_code():
    builder = PipelineBuilder("qa", namespace=NS)
    assert "no steps yet" in builder.steps_box.children[0].value
    assert builder.inputs["function"].options == ("clean", "needs_review")
    builder.kind.value = "native"
    assert builder.inputs["signature"].layout.display == "none"
    builder.inputs["function"].value = "clean"
    builder.inputs["output"].value = "question"
    builder.add_button.click()
    builder.kind.value = "dspy"
    builder.inputs["module"].value = "cot"
    builder.inputs["signature"].value = "question -> answer"
    builder.add_button.click()
    builder.kind.value = "parallel"
    builder.inputs["branches"].value = "answer -> summary\n\nanswer -> keywords: list[str]"
    builder.add_button.click()
    assert [s.kind for s in builder.draft.steps] == ["native", "dspy", "parallel"]
    assert builder.inputs["signature"].value == ""  # the form is cleared after Add
    assert "valid" in builder.status.value
    assert "dspex-pipeline" in builder.graph_view.value
    assert "dspy_step(&#x27;answer -&gt; summary&#x27;" in builder.code_view.value
    assert json.loads(builder.sample.value) == {"question": ""}
    assert builder.pipeline.outputs == ("answer", "summary", "keywords")


def test_builder_buttons_reorder_and_remove_and_show_errors():
    builder = PipelineBuilder(namespace=NS)
    builder.add_step("dspy", signature="question -> answer")
    builder.add_step("dspy", signature="answer -> summary")
    up = builder.steps_box.children[1].children[1]
    up.click()  # summary first: it reads 'answer', which nothing wrote yet
    assert builder.draft.steps[0].signature == "answer -> summary"
    assert "summary" in builder.status.value or "answer" in builder.status.value
    assert builder.graph_view.value == ""
    remove = builder.steps_box.children[0].children[3]
    remove.click()
    assert [s.signature for s in builder.draft.steps] == ["question -> answer"]
    assert "valid" in builder.status.value


def test_builder_tries_the_sample_in_a_thread(dspy_lm):
    builder = PipelineBuilder(namespace=NS, sample={"question": " What is 4 + 4? "},
                              run_options={"lm": dspy_lm, "implementation": "native"})
    builder.add_step("native", function="clean", output="question")
    builder.add_step("dspy", signature="question -> answer")
    builder.try_button.click()
    builder._try_thread.join(60)
    assert builder.last_result.answer == "8"
    assert "8" in builder.try_view.value and not builder.try_button.disabled
    builder.sample.value = "[1, 2]"
    builder.try_sample(wait=True)
    assert "JSON object" in builder.try_view.value
    builder.sample.value = "{}"
    builder.try_sample(wait=True)
    assert "lacks the input field" in builder.try_view.value
