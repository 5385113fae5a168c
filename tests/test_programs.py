"""Programs: what a module takes (its ``forward``'s parameters), what it returns (any value),
and a ``dspy.Signature`` class run as it is -- in real workers of the general pool on the
embedded LM, compared with plain DSPy run here with the same ``dspy.LM``."""

import dspy
import pandas as pd
import pydantic
import pytest

import dspex_lab
from dspex_lab.errors import ConfigurationError
from dspex_lab.programs import as_program
from dspex_lab.runtime import OUTPUT, outputs_of


class Polish(dspy.Module):
    """Its predictor is ``self.predict`` (as in many DSPy examples), its input is ``text``."""

    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("draft -> improved")

    def forward(self, text, tone="plain"):
        return self.predict(draft=f"{text} ({tone})")


class Answer(pydantic.BaseModel):
    text: str
    length: int


RETURNS = {
    "str": lambda a: a,
    "list": lambda a: [a, len(a)],
    "int": lambda a: len(a),
    "tuple": lambda a: (a, len(a)),
    "none": lambda a: None,
    "model": lambda a: Answer(text=a, length=len(a)),
    "dict_int_keys": lambda a: {1: a},
}


class Returns(dspy.Module):
    """Returns the answer as a plain value of the kind it is told."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.qa = dspy.Predict("question -> answer")

    def forward(self, question):
        return RETURNS[self.kind](self.qa(question=question).answer)


class Fields(dspy.Module):
    def __init__(self):
        super().__init__()
        self.qa = dspy.Predict("question -> answer")

    def forward(self, question):
        answer = self.qa(question=question).answer
        return {"answer": answer, "length": len(answer)}


class Summarize(dspy.Signature):
    """Summarize the text in one line."""

    text: str = dspy.InputField(desc="the text to summarize")
    summary: str = dspy.OutputField(prefix="One line:", desc="a single line")


QUESTIONS = pd.DataFrame({"question": ["What is 2 + 2?", "What is the capital of France?"]})


def plain(module, lm, **inputs):
    with dspy.context(lm=lm):
        return module(**inputs)


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    """Start the general pool once, outside the tests' timings."""
    from dspex_lab.workers import get_pool

    get_pool().call(int)


@pytest.fixture
def prompts(lm_server):
    """The prompts the embedded server receives (from any process), in order."""
    seen = []

    def record(prompt):
        seen.append(prompt)
        return {}

    lm_server.configure(responder=record)
    return seen


# -- what a module takes ----------------------------------------------------------------------

def test_a_module_takes_its_forward_parameters_not_its_predictors_signature():
    prog = as_program(Polish())
    assert prog.signature is None
    assert prog.input_names == ("text",) and prog.optional_inputs == ("tone",)
    assert as_program(Returns("str")).input_names == ("question",)


def test_dspy_modules_take_their_declared_signature():
    assert as_program(dspy.Predict("draft -> improved")).input_names == ("draft",)
    assert as_program(dspy.ChainOfThought("q, c -> a")).input_names == ("q", "c")


def test_a_module_runs_on_its_forward_columns_like_plain_dspy(dspy_lm):
    df = pd.DataFrame({"text": ["hello", "world"], "tone": ["warm", "dry"]})
    out = dspex_lab.run(Polish(), df, lm=dspy_lm, progress=False, cache=False)
    assert out["error"].isna().all()
    assert list(out["improved"]) == [plain(Polish(), dspy_lm, text=t, tone=o).improved
                                     for t, o in zip(df.text, df.tone, strict=True)]
    # without the optional column, forward's default applies
    out = dspex_lab.run(Polish(), df[["text"]], lm=dspy_lm, progress=False, cache=False)
    assert list(out["improved"]) == [plain(Polish(), dspy_lm, text=t).improved for t in df.text]


# -- what a module returns --------------------------------------------------------------------

def test_outputs_of_values():
    assert outputs_of(dspy.Prediction(answer="4", reasoning="r")) == {"answer": "4",
                                                                      "reasoning": "r"}
    assert outputs_of({"a": 1}) == {"a": 1}
    assert outputs_of("4") == {OUTPUT: "4"} and outputs_of(None) == {OUTPUT: None}
    assert outputs_of({1: "x"}) == {OUTPUT: {1: "x"}}


@pytest.mark.parametrize("kind", list(RETURNS))
def test_a_plain_return_value_is_one_output_column_holding_it(kind, dspy_lm):
    out = dspex_lab.run(Returns(kind), QUESTIONS, lm=dspy_lm, progress=False, cache=False)
    assert out["error"].isna().all(), out["error"].tolist()
    expected = [plain(Returns(kind), dspy_lm, question=q) for q in QUESTIONS.question]
    assert list(out[OUTPUT]) == expected
    pred = dspex_lab.predict(Returns(kind), question=QUESTIONS.question[0], lm=dspy_lm,
                             cache=False)
    assert pred[OUTPUT] == expected[0]


def test_a_dict_return_gives_one_column_per_key(dspy_lm):
    out = dspex_lab.run(Fields(), QUESTIONS, lm=dspy_lm, progress=False, cache=False)
    expected = [plain(Fields(), dspy_lm, question=q) for q in QUESTIONS.question]
    assert list(out["answer"]) == [e["answer"] for e in expected]
    assert list(out["length"]) == [e["length"] for e in expected]
    assert OUTPUT not in out.columns


# -- a dspy.Signature class, as it is ---------------------------------------------------------

def test_a_signature_class_is_kept_and_built_as_it_is():
    prog = as_program(Summarize)
    assert prog.dspy_signature is Summarize
    assert prog.build().signature is Summarize
    assert prog.input_names == ("text",) and prog.output_names == ("summary",)
    cot = as_program(Summarize, module="cot").build()
    assert cot.predict.signature.equals(dspy.ChainOfThought(Summarize).predict.signature)
    renamed = as_program(Summarize, instructions="Be terse.").dspy_signature
    assert renamed.instructions == "Be terse." and renamed.fields.keys() == Summarize.fields.keys()


@pytest.mark.parametrize("module", ["predict", "cot"])
def test_a_signature_class_prompts_exactly_as_plain_dspy(module, dspy_lm, prompts):
    text = "The cat sat on the mat all afternoon."
    dspy_module = dspy.Predict(Summarize) if module == "predict" else dspy.ChainOfThought(
        Summarize)
    expected = plain(dspy_module, dspy_lm, text=text)
    out = dspex_lab.run(Summarize, pd.DataFrame({"text": [text]}), module=module, lm=dspy_lm,
                        progress=False, cache=False)
    pred = dspex_lab.predict(Summarize, text=text, lm=dspy_lm, cache=False) \
        if module == "predict" else dspex_lab.chain_of_thought(Summarize, text=text,
                                                               lm=dspy_lm, cache=False)
    assert out.loc[0, "summary"] == pred.summary == expected.summary
    assert len(prompts) == 3
    assert prompts[1].messages == prompts[2].messages == prompts[0].messages
    assert "a single line" in str(prompts[0].messages)  # the class's own field description


# -- module options and tools -----------------------------------------------------------------

def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_run_takes_tools_for_react_like_plain_dspy(dspy_lm):
    df = pd.DataFrame({"question": ["What is 20 + 22?"]})
    out = dspex_lab.run("question -> answer: int", df, module="react", tools=[add],
                        max_iters=5, lm=dspy_lm, progress=False, cache=False)
    expected = plain(dspy.ReAct("question -> answer: int", tools=[add], max_iters=5), dspy_lm,
                     question="What is 20 + 22?")
    assert out.loc[0, "answer"] == expected.answer == 42
    assert as_program("q -> a", module="react", tools=[add]).build().max_iters == 20  # DSPy's


def test_module_options_reach_the_dspy_module():
    built = as_program("q -> a", module="cot", rationale_field_type=str, n=2).build()
    assert built.predict.config == {"n": 2}


def test_options_that_do_not_apply_are_clear_errors():
    with pytest.raises(ConfigurationError, match="module='react'"):
        as_program("q -> a", tools=[add])
    with pytest.raises(ConfigurationError, match="max_iters= is for module='react'"):
        dspex_lab.run("q -> a", [{"q": "hi"}], max_iters=3)
    with pytest.raises(ConfigurationError, match="runs as it is"):
        as_program(Polish(), module="react", tools=[add])
