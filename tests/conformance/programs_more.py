"""More DSPy programs (the "hidden set" of issue #12): module configs, hand-set demos, DSPy
modules calling ``batch``/``Parallel``/``dspy.context`` inside ``forward``, deep nesting,
``dspy.Code``/``dspy.Reasoning``/``list[Literal]``/``dict[str, Model]``/``tuple``/``datetime``
outputs, ``Optional`` inputs with ``None``, class signatures with ``desc=``/``prefix=``,
``with_instructions``/``append``/``prepend``/``delete``, ``dspy.Tool`` objects in ReAct,
pydantic tool arguments, a saved-then-loaded module, ``Refine`` with ``fail_count``, odd
return values and ``forward`` signatures.

Each source names where in DSPy's repository (docs/docs, tests) the program comes from; every
``Case`` is compared with plain DSPy by ``test_programs_more.py``.
"""

import datetime
import tempfile
from pathlib import Path
from typing import Literal, Optional

import dspy
import programs as P
from pydantic import BaseModel

QUESTIONS = P.QUESTIONS[:3]

# -- module configuration and demos (docs/docs/api/modules/Predict, learn/programming/modules) --


def make_predict_n3() -> dspy.Module:
    """``dspy.Predict(sig, n=3)``: three completions (the Prediction's fields are the first)."""
    return dspy.Predict("question -> answer", n=3, temperature=1.0)


def make_demos_by_hand() -> dspy.Module:
    """learn/programming/modules: demos set on a predictor by hand."""
    predict = dspy.Predict("question -> answer")
    predict.demos = [dspy.Example(question="What is 10 + 10?", answer="20"),
                     dspy.Example(question="What is the capital of Italy?", answer="Rome")]
    return predict


class BatchInside(dspy.Module):
    """``self.predict.batch`` inside forward (tutorials/async, tutorials/core_development)."""

    def __init__(self):
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str):
        examples = [dspy.Example(question=q).with_inputs("question")
                    for q in (question, question + " Answer briefly.")]
        answers = self.predict.batch(examples, num_threads=1, disable_progress_bar=True)
        return dspy.Prediction(answers=[a.answer for a in answers])


class ParallelInside(dspy.Module):
    """``dspy.Parallel`` over two predictors inside forward (docs/docs/api/modules/Parallel)."""

    def __init__(self):
        self.short = dspy.Predict("question -> answer")
        self.long = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str):
        example = dspy.Example(question=question).with_inputs("question")
        runs = dspy.Parallel(num_threads=1, disable_progress_bar=True)(
            [(self.short, example), (self.long, example)])
        return dspy.Prediction(short=runs[0].answer, long=runs[1].answer)


class ContextInside(dspy.Module):
    """``dspy.context(adapter=...)`` inside forward (learn/programming/language_models)."""

    def __init__(self):
        self.predict = dspy.Predict("question -> answer: str, confidence: float")

    def forward(self, question: str):
        with dspy.context(adapter=dspy.JSONAdapter()):
            return self.predict(question=question)


class Leaf(dspy.Module):
    def __init__(self):
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        return self.predict(question=question)


class Middle(dspy.Module):
    def __init__(self):
        self.leaf = Leaf()
        self.rewrite = dspy.Predict("question -> better_question")

    def forward(self, question):
        better = self.rewrite(question=question).better_question
        return self.leaf(question=better)


class Outer(dspy.Module):
    """Modules nested three levels deep (learn/programming/modules)."""

    def __init__(self):
        self.middle = Middle()

    def forward(self, question):
        answer = self.middle(question=question).answer
        return dspy.Prediction(answer=answer, length=len(answer))


# -- typed outputs (docs/docs/api/primitives, tests/adapters, tests/signatures) -----------------


class CodeGen(dspy.Signature):
    """tutorials/sample_code_generation: write Python for the task."""

    task: str = dspy.InputField()
    code: dspy.Code["python"] = dspy.OutputField()  # noqa: F821 - DSPy's spelling


class Tags(dspy.Signature):
    """Tag the text (tests/adapters: list[Literal])."""

    text: str = dspy.InputField()
    tags: list[Literal["news", "sports", "tech", "other"]] = dspy.OutputField()


class Address(BaseModel):
    city: str
    zip_code: str


class People(dspy.Signature):
    """Each person's address (tests/predict: dict[str, pydantic])."""

    text: str = dspy.InputField()
    addresses: dict[str, Address] = dspy.OutputField()


class Pair(dspy.Signature):
    """tests/signatures: a tuple output."""

    text: str = dspy.InputField()
    pair: tuple[int, str] = dspy.OutputField()


class WhenSig(dspy.Signature):
    """tests/adapters: a datetime output."""

    text: str = dspy.InputField()
    when: datetime.datetime = dspy.OutputField()


class OptionalInput(dspy.Signature):
    """tests/predict: an Optional input that may be None."""

    question: str = dspy.InputField()
    context: Optional[str] = dspy.InputField(default=None)  # noqa: UP045
    answer: str = dspy.OutputField()


class Described(dspy.Signature):
    """Answer the question (learn/programming/signatures: desc= and prefix=)."""

    question: str = dspy.InputField(desc="a question about the world", prefix="Q:")
    answer: str = dspy.OutputField(desc="often between 1 and 5 words", prefix="A:")
    score: int = dspy.OutputField(desc="1-10, how sure")


def make_with_instructions() -> dspy.Module:
    return dspy.Predict(dspy.Signature("question -> answer").with_instructions(
        "Answer in one word, in capitals."))


def make_appended() -> dspy.Module:
    """sig.append / prepend / delete (tests/signatures/test_signature.py)."""
    sig = dspy.Signature("question, extra -> answer")
    sig = sig.append("confidence", dspy.OutputField(), type_=float)
    sig = sig.prepend("topic", dspy.InputField(), type_=str)
    sig = sig.delete("extra")
    return dspy.Predict(sig)


def make_reasoning() -> dspy.Module:
    return dspy.Predict("question -> reasoning: dspy.Reasoning, answer: int")


# -- tools (tutorials/customer_service_agent, api/primitives/Tool) ------------------------------


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Flight(BaseModel):
    """(Defaults: the embedded LM writes ``{}`` for an object argument; a tool error's
    observation holds a traceback, which differs where a callback is active.)"""

    origin: str = "Paris"
    destination: str = "Rome"


def book_flight(flight: Flight) -> str:
    """Book a flight (a pydantic argument, tutorials/customer_service_agent)."""
    if isinstance(flight, dict):
        flight = Flight(**flight)
    return f"Booked {flight.origin} -> {flight.destination}."


def make_react_tool_object() -> dspy.Module:
    tool = dspy.Tool(P.evaluate_math, name="calculator", desc="Evaluate arithmetic.")
    return dspy.ReAct("question -> answer: float", tools=[tool], max_iters=3)


def make_react_pydantic_tool() -> dspy.Module:
    return dspy.ReAct("request -> confirmation: str", tools=[book_flight, multiply],
                      max_iters=3)


def broken_calculator(expression: str) -> float:
    """Evaluate arithmetic (always fails: ReAct shows the traceback to the LM)."""
    raise ValueError(f"cannot evaluate {expression!r}")


def make_react_failing_tool() -> dspy.Module:
    """A tool that raises: DSPy puts the error's traceback into the next prompt, so nothing
    dspex_lab adds around tools (callbacks, wrappers) may change that text."""
    return dspy.ReAct("question -> answer: float", tools=[broken_calculator], max_iters=3)


# -- refine, saved and loaded (tutorials/output_refinement, tutorials/saving) -------------------


def make_refine_fail_count() -> dspy.Module:
    return dspy.Refine(dspy.ChainOfThought("question -> answer"), N=2,
                       reward_fn=P.one_word_answer, threshold=1.0, fail_count=1)


def make_saved_then_loaded() -> dspy.Module:
    """tutorials/saving: save the program's state as JSON, load it into a fresh one."""
    program = dspy.ChainOfThought("question -> answer")
    program.predict.demos = [dspy.Example(question="What is 1 + 1?", reasoning="Add.",
                                          answer="2")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "program.json"
        program.save(str(path))
        loaded = dspy.ChainOfThought("question -> answer")
        loaded.load(str(path))
    return loaded


# -- return values and forward() signatures (learn/programming/modules) --------------------------


class ExtraFields(dspy.Module):
    """A Prediction with fields that are not in any signature."""

    def __init__(self):
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        pred = self.predict(question=question)
        return dspy.Prediction(answer=pred.answer, n_words=len(pred.answer.split()),
                               source="model")


class ReturnsNone(dspy.Module):
    def __init__(self):
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        self.predict(question=question)
        return None


class KeywordOnly(dspy.Module):
    """forward with a keyword-only argument and defaults."""

    def __init__(self):
        self.predict = dspy.Predict("question, style -> answer")

    def forward(self, question, *, style="short", suffix: str = ""):
        return self.predict(question=question + suffix, style=style)


TEXTS = [{"text": "Alice lives in Paris (75001) and Bob in Rome (00100); the match was at 3pm."},
         {"text": "New phone released today; stocks rose 3 percent."},
         {"text": "The final score was 2-1 on 2024-05-01."}]
TASKS = [{"task": "Add two numbers."}, {"task": "Reverse a string."},
         {"task": "Count vowels in a word."}]

def responder(prompt):
    """``programs.responder``, plus a datetime for ``when`` (the embedded LM writes none)."""
    if "when" in prompt.output_names:
        day = 1 + int(prompt.key[:4], 16) % 28
        return {"when": f"2024-05-{day:02d}T15:00:00"}
    return P.responder(prompt)


Case = P.Case

CASES: list[Case] = [
    Case("predict_n3", make_predict_n3, QUESTIONS, "api/modules/Predict (n=3, temperature)"),
    Case("demos_by_hand", make_demos_by_hand, QUESTIONS, "learn/programming/modules"),
    Case("batch_inside", BatchInside, QUESTIONS, "tutorials/async (module.batch in forward)"),
    Case("parallel_inside", ParallelInside, QUESTIONS, "api/modules/Parallel"),
    Case("context_inside", ContextInside, QUESTIONS, "learn/programming/language_models"),
    Case("nested_three_levels", Outer, QUESTIONS, "learn/programming/modules"),
    Case("code_output", lambda: dspy.Predict(CodeGen), TASKS, "tutorials/sample_code_generation"),
    Case("list_literal", lambda: dspy.Predict(Tags), TEXTS, "tests/adapters"),
    Case("dict_of_models", lambda: dspy.Predict(People), TEXTS, "tests/predict"),
    Case("tuple_output", lambda: dspy.Predict(Pair), TEXTS, "tests/signatures"),
    Case("datetime_output", lambda: dspy.Predict(WhenSig), TEXTS, "tests/adapters"),
    Case("optional_input_none", lambda: dspy.Predict(OptionalInput),
         [{"question": "What is 2 + 2?", "context": None},
          {"question": "Capital of France?", "context": "Europe"},
          {"question": "Who wrote Hamlet?", "context": None}], "tests/predict"),
    Case("desc_prefix", lambda: dspy.Predict(Described), QUESTIONS,
         "learn/programming/signatures"),
    Case("with_instructions", make_with_instructions, QUESTIONS, "tests/signatures"),
    Case("append_prepend_delete", make_appended,
         [{"topic": "math", "question": q["question"]} for q in QUESTIONS], "tests/signatures"),
    Case("reasoning_type", make_reasoning, P.MATH, "api/primitives/Reasoning"),
    Case("react_tool_object", make_react_tool_object, P.MATH, "api/primitives/Tool"),
    Case("react_pydantic_tool", make_react_pydantic_tool,
         [{"request": "Book a flight from Paris to Rome."},
          {"request": "Book a flight from Oslo to Bergen."}],
         "tutorials/customer_service_agent"),
    Case("react_failing_tool", make_react_failing_tool, P.MATH[1:], "tutorials/agents"),
    Case("refine_fail_count", make_refine_fail_count, QUESTIONS, "api/modules/Refine"),
    Case("saved_then_loaded", make_saved_then_loaded, QUESTIONS, "tutorials/saving"),
    Case("extra_fields", ExtraFields, QUESTIONS, "learn/programming/modules"),
    Case("returns_none", ReturnsNone, QUESTIONS, "learn/programming/modules"),
    Case("keyword_only", KeywordOnly,
         [{"question": "What is 2 + 2?", "style": "short"},
          {"question": "Capital of France?", "style": "long"}], "learn/programming/modules"),
    Case("cot_two_step_free", lambda: dspy.ChainOfThought("question -> answer: int"), P.MATH,
         "learn/programming/adapters (ChatAdapter explicitly)", adapter="chat"),
]

BY_NAME = {case.name: case for case in CASES}
