"""Save/load of compiled programs: readable JSON, import paths, clear errors (no LM calls)."""

import json
import sys
import textwrap

import pytest

from dspex_lab.errors import ConfigurationError
from dspex_lab.persistence import CompiledProgram, import_path, load, resolve_import_path
from dspex_lab.programs import as_program

dspy = pytest.importorskip("dspy")


@pytest.fixture
def tool_module(tmp_path, monkeypatch):
    """An importable module with a tool and a custom dspy.Module class."""
    (tmp_path / "dspex_test_tools.py").write_text(textwrap.dedent('''
        import dspy

        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        class TwoStep(dspy.Module):
            def __init__(self):
                super().__init__()
                self.draft = dspy.Predict("question -> draft")
                self.final = dspy.ChainOfThought("question, draft -> answer")

            def forward(self, question):
                draft = self.draft(question=question).draft
                return self.final(question=question, draft=draft)

        def clean(question: str) -> str:
            return question.strip()

        class NeedsArgs(dspy.Module):
            def __init__(self, n):
                super().__init__()
                self.p = dspy.Predict("question -> answer")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__("dspex_test_tools")
    sys.modules.pop("dspex_test_tools", None)


def compiled_with_demos(prog, n=2):
    module = prog.build()
    for predictor in module.predictors():
        predictor.demos = [dspy.Example(question=f"q{i}", answer=str(i)) for i in range(n)]
    return CompiledProgram(prog, module.dump_state(), optimizer="LabeledFewShot", score=75.0,
                           metadata={"trainset_size": n})


@pytest.mark.parametrize("kind", ["predict", "cot"])
def test_round_trip_of_signature_programs(tmp_path, kind):
    prog = as_program("question -> answer: int", module=kind, instructions="Answer briefly.")
    compiled = compiled_with_demos(prog, 3)
    path = compiled.save(tmp_path / "sub" / "prog.json")
    data = json.loads(path.read_text())
    assert data["format"] == "dspex_lab.compiled_program"
    assert data["program"] == {"kind": kind, "signature": "question -> answer: int",
                               "instructions": "Answer briefly."}
    assert data["demos"] == 3 and data["optimizer"] == "LabeledFewShot" and data["score"] == 75.0

    again = load(path)
    assert again.base.kind == kind and str(again.base.signature) == "question -> answer: int"
    assert again.demos == 3 and again.score == 75.0 and again.state == compiled.state
    assert again.program.kind == "module"
    assert again.__dspex_program__() is again.program
    assert [d["question"] for d in again.module.predictors()[0].demos] == ["q0", "q1", "q2"]
    assert "demos=3" in repr(again) and "Compiled program" in again._repr_html_()


def test_round_trip_of_react_with_an_importable_tool(tmp_path, tool_module):
    prog = as_program("question -> answer", module="react", tools=[tool_module.add], max_iters=3)
    path = compiled_with_demos(prog).save(tmp_path / "react.json")
    desc = json.loads(path.read_text())["program"]
    assert desc["tools"] == ["dspex_test_tools:add"] and desc["options"] == {"max_iters": 3}
    again = load(path)
    assert again.base.tools == (tool_module.add,) and again.base.options == {"max_iters": 3}
    assert again.demos == 4          # react + extract predictors, 2 demos each


def test_missing_tool_is_a_clear_error_and_tools_can_be_passed(tmp_path, tool_module):
    prog = as_program("question -> answer", module="react", tools=[tool_module.add])
    path = compiled_with_demos(prog).save(tmp_path / "react.json")
    text = path.read_text().replace("dspex_test_tools:add", "no_such_module_xyz:add")
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"tool 'add'.*pass tools=\[add\]"):
        load(path)
    assert load(path, tools=[tool_module.add]).base.tools == (tool_module.add,)


def test_custom_module_class_by_import_path(tmp_path, tool_module):
    prog = as_program(tool_module.TwoStep())
    compiled = compiled_with_demos(prog, 1)
    path = compiled.save(tmp_path / "custom.json")
    assert json.loads(path.read_text())["program"]["module_class"] == "dspex_test_tools:TwoStep"
    again = load(path)
    assert isinstance(again.module, tool_module.TwoStep) and again.demos == 2

    needs = compiled_with_demos(as_program(tool_module.NeedsArgs(1)), 1)
    path = needs.save(tmp_path / "needs.json")
    with pytest.raises(ConfigurationError, match=r"without arguments.*module=YourModule"):
        load(path)
    assert load(path, module=tool_module.NeedsArgs(2)).demos == 1


def test_round_trip_of_an_optimized_pipeline(tmp_path, tool_module):
    from dspex_lab.native import template
    from dspex_lab.pipeline import Pipeline, dspy_step, native

    pipe = Pipeline([native(tool_module.clean, output="question"),
                     native(template("Q: {question}"), output="prompt"),
                     dspy_step("question -> answer")], name="qa")
    compiled = compiled_with_demos(as_program(pipe), 2)
    path = compiled.save(tmp_path / "pipe.json")
    desc = json.loads(path.read_text())["program"]
    assert desc["kind"] == "pipeline" and isinstance(desc["pipeline"], dict)
    again = load(path)
    assert again.demos == 2 and again.state == compiled.state
    restored = again.module.to_pipeline()
    assert [s.name for s in restored.steps] == [s.name for s in pipe.steps]


def test_unsaveable_tools_and_bad_files(tmp_path):
    prog = as_program("question -> answer", module="react", tools=[lambda x: x])
    with pytest.raises(ConfigurationError, match="lambda, a nested function"):
        compiled_with_demos(prog).save(tmp_path / "x.json")
    with pytest.raises(ConfigurationError, match="No compiled program"):
        load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ConfigurationError, match="not a dspex_lab compiled program"):
        load(tmp_path / "other.json")


def test_state_that_does_not_fit_fails_at_load(tmp_path):
    path = compiled_with_demos(as_program("question -> answer", module="cot")).save(
        tmp_path / "cot.json")
    data = json.loads(path.read_text())
    data["program"]["kind"] = "react"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="does not fit"):
        load(path)


def test_import_paths():
    assert import_path(json.dumps) == "json:dumps"
    assert resolve_import_path("json:dumps") is json.dumps
    assert resolve_import_path("json:JSONDecoder.decode") is json.JSONDecoder.decode
    with pytest.raises(ConfigurationError, match="define it in the notebook"):
        resolve_import_path("__main__:surely_not_defined_here")


def test_scores_are_percentages_and_version_1_files_are_read_as_such(tmp_path):
    compiled = compiled_with_demos(as_program("question -> answer"))
    assert "score=75%" in repr(compiled)
    path = compiled.save(tmp_path / "v2.json")
    data = json.loads(path.read_text())
    assert data["version"] == 2 and data["score"] == 75.0
    data.update(version=1, score=0.75)  # written by an older dspex_lab: 0-1
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(data))
    assert load(old).score == 75.0
