"""``dspex_lab.portable``: which signature classes travel resolved with a program."""

import dspy
import pydantic

from dspex_lab.portable import _module_signatures


class Answer(pydantic.BaseModel):
    text: str


class Ask(dspy.Signature):
    """Answer."""

    question: str = dspy.InputField()
    answer: Answer = dspy.OutputField()


class Pipeline(dspy.Module):
    def __init__(self):
        super().__init__()
        self.steps = [dspy.Predict(Ask)]
        self.by_name = {"cot": dspy.ChainOfThought("question -> answer")}


def test_signature_classes_of_modules_in_lists_and_dicts_are_found():
    found = _module_signatures(Pipeline())
    assert Ask in found and len(found) == 2


def test_the_call_history_of_a_module_is_not_walked():
    """A module's ``history`` grows with every call (thousands of entries after a batch):
    pickling a program for each chunk must not walk it."""
    module = Pipeline()

    class Exploding(list):
        def __iter__(self):
            raise AssertionError("history was walked")

    module.history = Exploding([{"prompt": "..."}] * 1000)
    assert Ask in _module_signatures(module)
