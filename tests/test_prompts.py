"""The embedded LM reads DSPy prompts and answers in a form DSPy parses back, with right types.

These tests use DSPy's real adapters to write the prompts and to parse the answers, without
HTTP (the HTTP path is in tests/integration/test_lm_server.py).
"""

from __future__ import annotations

import enum
import json
from typing import Any, Literal

import dspy
import pydantic
import pytest

from dspex_lab.lm_server.answers import compose, load_rules
from dspex_lab.lm_server.prompts import parse_request, render_completion
from dspex_lab.lm_server.solvers import arithmetic_expression, evaluate, solve
from dspex_lab.lm_server.typespec import TypeSpec, from_json_schema, parse_annotation

ADAPTERS = [dspy.ChatAdapter, dspy.JSONAdapter, dspy.XMLAdapter]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Person(pydantic.BaseModel):
    name: str
    age: int
    tags: list[str]


class Typed(dspy.Signature):
    """Answer with typed fields."""

    question: str = dspy.InputField()
    context: list[str] = dspy.InputField()
    count: int = dspy.OutputField()
    score: float = dspy.OutputField(desc="a score")
    ok: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    meta: dict[str, int] = dspy.OutputField()
    label: Literal["pos", "neg", "it's"] = dspy.OutputField()
    maybe: str | None = dspy.OutputField()
    pair: tuple[int, str] = dspy.OutputField()
    color: Color = dspy.OutputField()
    person: Person = dspy.OutputField()
    nested: dict[str, list[float]] = dspy.OutputField()


def _body(adapter: Any, signature: Any, **inputs: Any) -> dict[str, Any]:
    return {"model": "dspex-embedded", "messages": adapter.format(signature, [], inputs)}


def _round_trip(adapter: Any, signature: Any, **inputs: Any) -> dict[str, Any]:
    prompt = parse_request(_body(adapter, signature, **inputs))
    return adapter.parse(signature, render_completion(prompt, compose(prompt)))


# -- parsing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("adapter_cls", [dspy.ChatAdapter, dspy.JSONAdapter])
def test_parse_reads_fields_types_and_inputs(adapter_cls):
    prompt = parse_request(_body(adapter_cls(), Typed, question="What is 2 + 3?",
                                 context=["a", "b"]))
    assert prompt.adapter == ("json" if adapter_cls is dspy.JSONAdapter else "chat")
    assert prompt.input_names == ["question", "context"]
    assert prompt.inputs["question"] == "What is 2 + 3?"
    assert "Respond" not in prompt.inputs["context"]
    types = {f.name: f.type for f in prompt.outputs}
    assert list(types) == list(Typed.output_fields)
    assert types["label"] == TypeSpec("literal", choices=("pos", "neg", "it's"))
    assert types["maybe"].without_none().kind == "str"
    assert types["color"].choices == ("red", "green")          # from the note, not the name
    assert dict(types["person"].fields)["age"].kind == "int"    # from the JSON schema
    assert prompt.instructions == "Answer with typed fields."


def test_parse_plain_request_and_json_schema_response_format():
    plain = parse_request({"messages": [{"role": "user", "content": "hello"}]})
    assert (plain.adapter, plain.output_names, plain.text) == ("plain", ["answer"], "hello")
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "population": {"type": "integer"}}}
    prompt = parse_request({"messages": [{"role": "user", "content": "Capital of France?"}],
                            "response_format": {"type": "json_schema",
                                                "json_schema": {"name": "x", "schema": schema}}})
    values = compose(prompt)
    assert prompt.adapter == "json"
    assert values["city"] == "Paris" and isinstance(values["population"], int)
    json_mode = parse_request({"messages": [{"role": "user", "content": "What is 2 + 3?"}],
                               "response_format": {"type": "json_object"}})
    assert json.loads(render_completion(json_mode, compose(json_mode))) == {"answer": "5"}


def test_parse_content_parts_and_same_key_for_same_messages():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is 6 * 7?"}]}]}
    a, b = parse_request(body), parse_request(dict(body))
    assert a.text == "What is 6 * 7?" and a.key == b.key
    assert a.key != parse_request({"messages": [{"role": "user", "content": "other"}]}).key


# -- typed answers parse back -------------------------------------------------------------------

@pytest.mark.parametrize("adapter_cls", ADAPTERS)
def test_every_output_type_parses_back(adapter_cls):
    signature = Typed
    if adapter_cls is dspy.XMLAdapter:  # nested XML for containers is not produced
        signature = dspy.Signature("question, context -> count: int, score: float, ok: bool, "
                                   "label: Literal['pos', 'neg'], summary: str")
    out = _round_trip(adapter_cls(), signature, question="I love this: 2 + 3",
                      context=["x", "y"])
    assert set(out) == set(signature.output_fields)
    for name, field in signature.output_fields.items():
        pydantic.TypeAdapter(field.annotation).validate_python(out[name])
    assert out["count"] == 5 and isinstance(out["score"], float)
    assert out["label"] == "pos"                                # sentiment heuristic


@pytest.mark.parametrize("adapter_cls", [dspy.ChatAdapter, dspy.JSONAdapter])
def test_chain_of_thought_has_reasoning_and_facts(adapter_cls):
    signature = dspy.ChainOfThought("question -> answer").predict.signature
    out = _round_trip(adapter_cls(), signature, question="What is the capital of France?")
    assert out["answer"] == "Paris"
    assert "France" in out["reasoning"]


@pytest.mark.parametrize("adapter_cls", [dspy.ChatAdapter, dspy.JSONAdapter])
def test_react_calls_the_first_tool_then_finishes(adapter_cls):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    react = dspy.ReAct("question -> answer: int", tools=[add])
    step_sig = react.react.signature
    first = _round_trip(adapter_cls(), step_sig, question="What is 2 + 3?", trajectory="")
    assert first["next_tool_name"] == "add" and first["next_tool_args"] == {"a": 2, "b": 3}
    trajectory = adapter_cls().format_user_message_content(
        dspy.Signature("thought_0, tool_name_0, tool_args_0, observation_0 -> x"),
        {"thought_0": "t", "tool_name_0": "add", "tool_args_0": {"a": 2, "b": 3},
         "observation_0": 5})
    second = _round_trip(adapter_cls(), step_sig, question="What is 2 + 3?",
                         trajectory=trajectory)
    assert second["next_tool_name"] == "finish" and second["next_tool_args"] == {}
    final = _round_trip(adapter_cls(), react.extract.predict.signature,
                        question="What is 2 + 3?", trajectory=trajectory)
    assert final["answer"] == 5


def test_answers_are_deterministic_and_seed_dependent():
    body = _body(dspy.ChatAdapter(), dspy.Signature("text -> topic, score: float"),
                 text="Quantum computing startups raised money this year.")
    runs = [compose(parse_request(body), seed=s) for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0]["score"] != runs[2]["score"]


def test_responder_and_rules_override_builtin_answers():
    body = _body(dspy.JSONAdapter(), dspy.Signature("question -> answer, n: int"),
                 question="Who is the best cat?")
    prompt = parse_request(body)
    rules = load_rules([{"match": "best cat", "answer": {"answer": "Tom", "n": "7"}}])
    assert compose(prompt, rules=rules) == {"answer": "Tom", "n": 7}
    seen = []

    def responder(p):
        seen.append(p.inputs["question"])
        return {"answer": "Felix"}

    assert compose(prompt, rules=rules, responder=responder) == {"answer": "Felix", "n": 7}
    assert seen == ["Who is the best cat?"]


def test_rules_from_yaml_and_json_files(tmp_path):
    (tmp_path / "r.yaml").write_text("- match: hello\n  answer: hi there\n")
    (tmp_path / "r.json").write_text('{"rules": [{"match": "x", "answer": {"a": 1}}]}')
    assert load_rules(tmp_path / "r.yaml")[0].answer == "hi there"
    assert load_rules(str(tmp_path / "r.json"))[0].answer == {"a": 1}
    with pytest.raises(ValueError, match="needs 'match'"):
        load_rules([{"answer": "no pattern"}])


# -- types and solvers --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind"), [
    ("str", "str"), ("int", "int"), ("list[str]", "list"), ("dict[str, Any]", "dict"),
    ("Union[int, NoneType]", "union"), ("Optional[int]", "union"), ("tuple[int, ...]", "tuple"),
    ("Literal['a, b', \"it's\"]", "literal"), ("MyModel", "named"),
])
def test_parse_annotation_kinds(text, kind):
    assert parse_annotation(text).kind == kind


def test_literal_with_commas_and_quotes_and_json_schema_refs():
    assert parse_annotation("Literal['a, b', \"it's\", 3]").choices == ("a, b", "it's", 3)
    schema = pydantic.TypeAdapter(list[Person]).json_schema()
    spec = from_json_schema(schema)
    assert spec.kind == "list" and dict(spec.args[0].fields)["tags"].kind == "list"


@pytest.mark.parametrize(("question", "expected"), [
    ("What is 2 + 3?", 5), ("Compute (4 + 6) * 3.", 30), ("What is 7 divided by 2?", 3.5),
    ("what is 10 minus 4", 6), ("6 times 7", 42), ("What is the capital of Japan?", "Tokyo"),
    ("Who wrote Hamlet?", "William Shakespeare"), ("Tell me a story", None),
    ("In 2024 we met", None), ("1 / 0", None),
])
def test_solve(question, expected):
    assert solve(question) == expected


def test_expression_is_safe():
    assert evaluate("__import__('os').system('true')") is None
    assert evaluate("2 ** 1000000") is None
    assert arithmetic_expression("What is 6 * 7?") == "6 * 7"
