"""SignatureDraft (the model) and SignatureBuilder (the widget, driven in-process)."""

import pytest

from dspex_lab.errors import SignatureError
from dspex_lab.signatures import Signature, signature
from dspex_lab.widgets.signature_builder import SignatureBuilder
from dspex_lab.widgets.signature_draft import FieldDraft, SignatureDraft


def test_draft_round_trips_text_and_reorders_fields():
    draft = SignatureDraft.from_text("question, context: list[str] 'passages' -> answer: int")
    assert draft.inputs == [FieldDraft("question", "str", ""),
                            FieldDraft("context", "list[str]", "passages")]
    assert draft.text == "question, context: list[str] 'passages' -> answer: int"
    assert draft.move("input", 1, -1) == 0
    assert draft.move("input", 0, -5) == 0  # clamped
    draft.add("output", "confidence", "float", "0 to 1")
    assert draft.text == ("context: list[str] 'passages', question -> answer: int, "
                          "confidence: float '0 to 1'")
    assert draft.signature.input_names == ("context", "question")
    assert draft.remove("output", 0).name == "answer"
    assert draft.signature.output_names == ("confidence",)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.add("input", "", "int"), ("input", 1)),
    (lambda d: setattr(d.outputs[0], "type", "lisst[int]"), ("output", 0)),
    (lambda d: d.add("output", "question"), ("output", 1)),
    (lambda d: setattr(d.inputs[0], "name", "_private"), ("input", 0)),
])
def test_draft_errors_are_the_parsers_with_the_caret_and_the_field(edit, field):
    draft = SignatureDraft.from_text("question -> answer")
    edit(draft)
    with pytest.raises(SignatureError) as parsed:
        signature(draft.text)
    assert draft.errors == [str(parsed.value)]
    assert "^" in draft.errors[0]
    assert draft.error_field == field
    with pytest.raises(SignatureError):
        draft.signature  # noqa: B018


def test_draft_with_no_outputs_reports_the_parser_message():
    draft = SignatureDraft.from_text("question -> answer")
    draft.remove("output", 0)
    assert draft.errors and "output" in draft.errors[0]


def test_to_code_builds_an_equal_dspy_signature():
    draft = SignatureDraft.from_text(
        "question, when: datetime -> answer: int 'a number', label: Literal['a', 'b'], "
        "extra: Any", instructions='Be "brief".\nSecond line.')
    code = draft.to_code()
    namespace: dict = {}
    exec(code, namespace)  # the generated code runs as is
    cls = namespace["QuestionWhenToAnswerLabelExtra"]
    def described(sig):  # ``typed`` aside (DSPy annotates every field)
        return [(f.name, f.type, f.description, f.kind) for f in sig.fields]

    assert described(Signature.from_dspy(cls)) == described(draft.signature)
    assert cls.instructions == 'Be "brief".\nSecond line.'
    assert "dspex_lab.signature(" in code


def test_to_code_of_a_plain_signature_is_minimal():
    code = SignatureDraft.from_text("question -> answer").to_code()
    assert code.splitlines()[:4] == ["import dspy", "", "",
                                     "class QuestionToAnswer(dspy.Signature):"]
    assert "from typing" not in code


# -- the widget ---------------------------------------------------------------------------------

def rows(builder, kind):
    return builder._boxes[kind].children


def test_builder_adds_edits_and_validates_like_the_parser():
    builder = SignatureBuilder("question -> answer")
    assert builder.valid and builder.value == "question -> answer"
    builder.add_buttons["input"].click()
    assert len(rows(builder, "input")) == 2
    assert not builder.valid  # the new field has no name yet
    assert "(column 9)" in builder.status.value and "^" in builder.status.value
    assert rows(builder, "input")[1].layout.border  # the bad row is outlined
    name, kind, desc = rows(builder, "input")[1].children[:3]
    name.value = "context"
    kind.value = "list[str]"
    desc.value = "passages"
    assert builder.valid and "valid" in builder.status.value
    assert builder.value == "question, context: list[str] 'passages' -> answer"
    assert builder.signature == signature("question, context: list[str] 'passages' -> answer")
    assert "context: list[str] = dspy.InputField(desc=&#x27;passages&#x27;)" in \
        builder.code_view.value


def test_builder_reorders_and_removes_with_its_buttons():
    builder = SignatureBuilder("a, b, c -> x")
    up = rows(builder, "input")[2].children[3]
    up.click()
    assert builder.value == "a, c, b -> x"
    remove = rows(builder, "input")[0].children[5]
    remove.click()
    assert builder.value == "c, b -> x"
    down = rows(builder, "input")[0].children[4]
    down.click()
    assert builder.signature.input_names == ("b", "c")


def test_builder_instructions_and_observers():
    builder = SignatureBuilder(signature("question -> answer"))
    seen = []
    builder.observe(lambda c: seen.append(c["new"]), "value")
    builder.instructions.value = "Answer in French."
    assert builder.signature.instructions == "Answer in French."
    rows(builder, "output")[0].children[0].value = "reponse"
    assert seen[-1] == "question -> reponse"
