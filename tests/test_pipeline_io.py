"""Save/load (JSON, YAML) round trips, code references and their errors, and to_code()."""

import json

import pytest

from dspex_lab.errors import PipelineError
from dspex_lab.native.templates import template
from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when


def clean(question: str) -> str:
    return question.strip()


def is_long(state) -> bool:
    return len(state["answer"]) > 3


def shout(answer: str) -> str:
    return answer.upper()


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def sample() -> Pipeline:
    return Pipeline([
        native(clean, output="question"),
        parallel(dspy_step("question -> answer", module="cot", temperature=0.0),
                 native(template("Q: {question}"), output="prompt"), timeout=30, name="fan"),
        map("items", dspy_step("item -> label", name="label", demos=[{"item": "x", "label": "y"}])),
        when(is_long, native(shout, name="loud"), name="check"),
        when("flag", dspy_step("question -> tool_answer", module="react", tools=[add],
                               max_iters=3, name="agent")),
    ], name="sample", description="A pipeline to save.")


def test_json_round_trip(tmp_path):
    p = sample()
    path = p.save(tmp_path / "p.json")
    data = json.loads(path.read_text())
    assert data["format"] == "dspex_lab.pipeline" and data["name"] == "sample"
    native_step = data["steps"][0]
    assert native_step["function"] == f"{__name__}:clean" and native_step["outputs"] == ["question"]
    assert data["steps"][1]["branches"][1]["template"] == "Q: {question}"
    assert data["steps"][2]["step"]["state"] == {"self": {"demos": [{"item": "x", "label": "y"}]}}
    again = Pipeline.load(path)
    assert again.to_dict() == p.to_dict()
    assert again.signature == p.signature and again.description == p.description
    assert again.step("clean").fn is clean and again.step("agent").tools == (add,)


def test_yaml_round_trip(tmp_path):
    p = sample()
    path = p.save(tmp_path / "p.yaml")
    assert "type: native" in path.read_text()
    assert Pipeline.load(path).to_dict() == p.to_dict()


def test_save_load_run_gives_the_same_outputs(tmp_path, dspy_lm):
    p = Pipeline([native(clean, output="question"), dspy_step("question -> answer"),
                  native(shout)], name="qa", inputs=["question"])
    again = Pipeline.load(p.save(tmp_path / "qa.json"))
    kw = {"lm": dspy_lm, "implementation": "native", "cache": False}
    first = p(question=" What is the capital of France? ", **kw)
    second = again(question=" What is the capital of France? ", **kw)
    assert first.outputs == second.outputs == {"answer": "Paris", "shout": "PARIS"}
    assert again.inputs == ("question",)


def test_lambdas_and_closures_need_allow_pickle(tmp_path):
    factor = 3
    p = Pipeline([native(lambda x: x * factor, output="y", name="triple")])
    with pytest.raises(PipelineError, match="allow_pickle=True") as err:
        p.save(tmp_path / "p.json")
    assert err.value.step == "triple" and "lambda" in str(err.value)
    path = p.save(tmp_path / "p.json", allow_pickle=True)
    assert "pickle" in json.loads(path.read_text())["steps"][0]
    with pytest.raises(PipelineError, match="allow_pickle=True") as err:
        Pipeline.load(path)
    assert err.value.step == "triple"
    assert Pipeline.load(path, allow_pickle=True)(x=2).y == 6


def test_a_function_that_cannot_be_imported_is_a_clear_error(tmp_path):
    data = Pipeline([native(clean, output="question")]).to_dict()
    data["steps"][0]["function"] = "no_such_module_xyz:clean"
    with pytest.raises(PipelineError, match="no_such_module_xyz") as err:
        Pipeline.from_dict(data)
    assert err.value.step == "clean"


def test_bad_files(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(PipelineError, match="not valid JSON"):
        Pipeline.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"format": "other"}')
    with pytest.raises(PipelineError, match="not a saved pipeline"):
        Pipeline.load(tmp_path / "y.json")
    with pytest.raises(PipelineError, match="Cannot read"):
        Pipeline.load(tmp_path / "missing.json")


def test_lm_objects_cannot_be_saved(dspy_lm):
    p = Pipeline([dspy_step("q -> a", lm=dspy_lm)])
    with pytest.raises(PipelineError, match="configured LM name"):
        p.to_dict()
    assert Pipeline([dspy_step("q -> a", lm="fast")]).to_dict()["steps"][0]["lm"] == "fast"


def test_to_code_rebuilds_the_pipeline():
    p = sample()
    code = p.to_code()
    assert f"from {__name__} import add, clean, is_long, shout" in code
    namespace: dict = {}
    exec(compile(code, "<to_code>", "exec"), namespace)
    assert namespace["pipeline"].to_dict() == p.to_dict()


def test_to_code_marks_lambdas():
    code = Pipeline([native(lambda x: x, output="y", name="ident")]).to_code("pl")
    assert "# TODO: define ident_fn" in code and "pl = Pipeline(" in code
