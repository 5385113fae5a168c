"""``Pipeline.to_dspy()``: real DSPy submodules, optimizers, Evaluate, and demos coming back."""

import cloudpickle
import dspy
import pytest

from dspex_lab.errors import PipelineError
from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when


def clean(question: str) -> str:
    return question.strip()


def tidy(answer: str) -> str:
    return answer.strip().rstrip(".")


def qa() -> Pipeline:
    return Pipeline([native(clean, output="question"),
                     dspy_step("question -> answer", module="cot"),
                     native(tidy, output="final")], name="qa")


def test_dspy_steps_are_real_submodules():
    module = Pipeline([
        dspy_step("question -> answer", module="cot"),
        parallel(dspy_step("answer -> summary"), dspy_step("answer -> forward")),
        map("items", dspy_step("item -> label")),
        when("flag", dspy_step("question -> extra")),
    ]).to_dspy()
    names = [n for n, _ in module.named_predictors()]
    assert names == ["answer.predict", "summary", "step_forward", "label", "extra"]
    assert isinstance(module.answer, dspy.ChainOfThought)
    assert "PipelineModule('pipeline'" in repr(module)


def test_forward_runs_the_pipeline_in_process(dspy_lm):
    module = qa().to_dspy()
    with dspy.context(lm=dspy_lm):
        pred = module(question="  What is the capital of France? ")
    assert isinstance(pred, dspy.Prediction)
    assert pred.answer == "Paris" and pred.final == "Paris"
    with dspy.context(lm=dspy_lm):
        full = qa().to_dspy(full_state=True)(question=" What is 2 + 3? ")
    assert full.question == "What is 2 + 3?" and full.answer == "5"


def test_bootstrap_few_shot_compiles_and_demos_come_back(dspy_lm, tmp_path):
    pipeline = qa()
    train = [dspy.Example(question=q, final=a).with_inputs("question") for q, a in
             [("What is 2 + 3?", "5"), ("What is 6 * 7?", "42"),
              ("What is the capital of France?", "Paris"), ("What is 10 - 4?", "6")]]

    def metric(example, pred, trace=None):
        return example.final == pred.final

    optimizer = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=2,
                                      max_labeled_demos=0, max_rounds=1)
    with dspy.context(lm=dspy_lm):
        compiled = optimizer.compile(pipeline.to_dspy(), trainset=train)
        score = dspy.Evaluate(devset=train, metric=metric, num_threads=1,
                              display_progress=False)(compiled)
    assert len(compiled.answer.predict.demos) == 2
    assert float(getattr(score, "score", score)) == 100.0

    better = compiled.to_pipeline()
    step = better.step("answer")
    assert step.demo_count == 2 and pipeline.step("answer").demo_count == 0
    assert better.step("answer").state["predict"]["demos"][0]["question"] == "What is 2 + 3?"
    assert Pipeline.from_dspy_state(pipeline, compiled.dump_state()).to_dict() == better.to_dict()

    loaded = Pipeline.load(better.save(tmp_path / "qa.json"))
    assert loaded.step("answer").demo_count == 2
    rebuilt = loaded.to_dspy()
    assert [d.question for d in rebuilt.answer.predict.demos] == [
        d.question for d in compiled.answer.predict.demos]
    with dspy.context(lm=dspy_lm):
        assert rebuilt(question="What is 6 * 7?").final == "42"


def test_optimized_instructions_round_trip():
    pipeline = qa()
    module = pipeline.to_dspy()
    module.answer.predict.signature = module.answer.predict.signature.with_instructions("Be terse.")
    better = pipeline.with_dspy_state(module)
    assert better.step("answer").state == {"predict": {"instructions": "Be terse."}}
    assert better.to_dspy().answer.predict.signature.instructions == "Be terse."


def test_state_from_another_pipeline_is_refused():
    other = Pipeline([dspy_step("question -> reply")]).to_dspy()
    with pytest.raises(PipelineError, match="no step 'answer'"):
        qa().with_dspy_state(other)
    with pytest.raises(PipelineError, match="Expected a module"):
        qa().with_dspy_state(42)


def test_dump_state_tells_pipelines_apart_and_module_pickles():
    a = Pipeline([dspy_step("question -> answer"), native(tidy, output="final")]).to_dspy()
    b = Pipeline([dspy_step("question -> answer"), native(clean, inputs=["answer"],
                                                          output="final")]).to_dspy()
    assert a.dump_state()["_dspex_pipeline"] != b.dump_state()["_dspex_pipeline"]
    copy = cloudpickle.loads(cloudpickle.dumps(a))
    assert [n for n, _ in copy.named_predictors()] == ["answer"]
    assert copy.pipeline.step("tidy").fn is tidy


def test_program_for_batches_wraps_the_module():
    pipeline = qa()
    program = pipeline.__dspex_program__()
    assert program.kind == "module" and program is pipeline.__dspex_program__()
    assert str(program.signature) == "question: str -> answer, final"
    assert program.module.pipeline is pipeline
