"""Step values and their factories: inference of inputs/outputs, coercion, clear errors."""

from typing import TypedDict

import pytest

from dspex_lab.errors import PipelineError
from dspex_lab.native.templates import template
from dspex_lab.pipeline import (
    DSPyStep,
    Map,
    NativeStep,
    Parallel,
    Sequence,
    as_step,
    dspy_step,
    map,
    native,
    parallel,
    when,
)


def word_count(answer: str) -> int:
    return len(answer.split())


def with_default(question: str, k: int = 3) -> str:
    return question * k


class Stats(TypedDict):
    words: int
    chars: int


def stats(text: str) -> Stats:
    return {"words": len(text.split()), "chars": len(text)}


def test_native_infers_inputs_output_and_types():
    step = native(word_count)
    assert (step.name, step.reads, step.writes) == ("word_count", ("answer",), ("word_count",))
    assert dict(step.types) == {"answer": "str", "word_count": "int"}
    assert step.call({"answer": "a b c", "other": 1}) == {"word_count": 3}


def test_native_parameters_with_defaults_are_optional():
    step = native(with_default, output="q")
    assert step.reads == ("question", "k") and step.optional == ("k",)
    assert step.call({"question": "x"}) == {"q": "xxx"}
    assert step.call({"question": "x", "k": 1}) == {"q": "x"}
    assert native(with_default, inputs=["question", "k"], output="q").optional == ()


def test_native_typed_dict_return_gives_several_outputs():
    step = native(stats)
    assert step.writes == ("words", "chars")
    assert step.call({"text": "a bc"}) == {"words": 2, "chars": 4}


def test_native_multi_output_must_return_every_key():
    step = native(lambda a: {"x": a}, outputs=["x", "y"], name="split")
    with pytest.raises(PipelineError, match=r"without \['y'\]") as err:
        step.call({"a": 1})
    assert err.value.step == "split"
    with pytest.raises(PipelineError, match="must return a dict"):
        native(lambda a: a, outputs="x, y", name="s").call({"a": 1})


def test_native_single_output_unwraps_a_dict_with_that_key():
    step = native(lambda a: {"x": a}, output="x", name="s")
    assert step.call({"a": 2}) == {"x": 2}
    keep = native(lambda a: {"k": a}, output="x", name="s2")
    assert keep.call({"a": 2}) == {"x": {"k": 2}}


def test_native_without_outputs_returns_nothing():
    seen = []
    step = native(lambda answer: seen.append(answer), outputs=[], name="check")
    assert step.writes == () and step.call({"answer": "A"}) == {} and seen == ["A"]


def test_lambda_needs_a_declared_output():
    with pytest.raises(PipelineError, match="declare output='x'"):
        native(lambda x: x)


def test_star_args_need_declared_inputs():
    def f(*args):
        return 1

    with pytest.raises(PipelineError, match=r"declare inputs=\[\.\.\.\]"):
        native(f)
    assert native(f, inputs=["a"], output="b").reads == ("a",)


def test_positional_only_functions_take_declared_inputs_in_order():
    assert native(len, inputs=["answer"], output="n").call({"answer": "abc"}) == {"n": 3}
    assert native(divmod, inputs=["b", "a"], output="qr").call({"a": 2, "b": 7}) == {"qr": (3, 1)}
    with pytest.raises(PipelineError, match="positional-only"):
        native(len, output="n")


def test_template_step_reads_its_variables():
    step = native(template("Answer about {topic}: {question}"), output="prompt")
    assert isinstance(step, NativeStep) and step.is_template
    assert step.reads == ("topic", "question") and step.name == "prompt"
    rendered = step.call({"topic": "maths", "question": "2+2?"})
    assert rendered == {"prompt": "Answer about maths: 2+2?"}


def test_dspy_step_from_a_signature():
    step = dspy_step("question, context -> answer", module="cot")
    assert isinstance(step, DSPyStep)
    assert (step.name, step.reads, step.writes, step.operation) == (
        "answer", ("question", "context"), ("answer",), "chain_of_thought")
    assert dspy_step("q -> a, b").name == "a_b"


def test_dspy_step_errors_name_the_step():
    with pytest.raises(PipelineError, match="bad signature") as err:
        dspy_step("question -> ", name="broken")
    assert err.value.step == "broken"
    with pytest.raises(PipelineError, match="Unknown DSPy module"):
        dspy_step("q -> a", module="nope")
    with pytest.raises(PipelineError, match="needs tools"):
        dspy_step("q -> a", module="react")


def test_dspy_step_demos_go_to_the_predictor():
    step = dspy_step("q -> a", demos=[{"q": "1", "a": "2"}])
    assert step.state == {"self": {"demos": [{"q": "1", "a": "2"}]}} and step.demo_count == 1
    cot = dspy_step("q -> a", module="cot", demos=[{"q": "1", "a": "2"}])
    assert list(cot.state) == ["predict"]


def test_custom_dspy_module_fields_inferred_or_declared():
    import dspy

    step = dspy_step(dspy.ChainOfThought("question -> answer: int"), name="calc")
    assert step.module == "module" and step.reads == ("question",) and step.writes == ("answer",)

    class Two(dspy.Module):
        def forward(self, a):
            return dspy.Prediction(b=a)

    with pytest.raises(PipelineError, match="Declare them"):
        dspy_step(Two())
    assert dspy_step(Two(), inputs=["a"], outputs=["b"]).writes == ("b",)


def test_compound_factories():
    p = parallel(dspy_step("t -> summary"), [native(word_count), native(stats)], timeout=2)
    assert isinstance(p, Parallel) and isinstance(p.branches[1], Sequence) and p.timeout == 2
    with pytest.raises(PipelineError):
        parallel()
    with pytest.raises(PipelineError, match="positive"):
        parallel(native(word_count), timeout=0)
    w = when("flag", native(word_count))
    assert w.reads == ("flag",) and w.otherwise is None
    assert w.test({"flag": 1}) and not w.test({})
    assert when(lambda s: s.score > 1, native(word_count)).test({"score": 2})
    with pytest.raises(PipelineError, match="field name or a callable"):
        when(3, native(word_count))
    m = map("questions", "question -> answer")
    assert isinstance(m, Map) and m.as_ == "question" and m.reads == ("questions",)
    assert map("data", native(word_count)).as_ == "item"


def test_as_step_coerces_and_rejects():
    assert isinstance(as_step("q -> a"), DSPyStep)
    assert isinstance(as_step(word_count), NativeStep)
    assert isinstance(as_step([word_count]), Sequence)
    with pytest.raises(PipelineError, match="Cannot use a int"):
        as_step(3)


def test_public_names_match_all():
    import types

    import dspex_lab.pipeline as pipeline_pkg

    public = {n for n in dir(pipeline_pkg) if not n.startswith("_")
              and not isinstance(getattr(pipeline_pkg, n), types.ModuleType)}
    assert public == set(pipeline_pkg.__all__)
    assert pipeline_pkg.map is pipeline_pkg.map_step
