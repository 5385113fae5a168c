"""Native templates: rendering, validation at build and render time, no code execution."""

import pickle

import pandas as pd
import pytest

from dspex_lab.errors import TemplateError
from dspex_lab.native import Template, render_template, template
from dspex_lab.router import get_router


def test_variables_and_render():
    t = template("Answer about {topic}: {question}")
    assert t.variables == ("topic", "question")
    assert t.render(topic="maths", question="2 + 3?") == "Answer about maths: 2 + 3?"
    assert t.render({"topic": "maths"}, question="q") == "Answer about maths: q"
    assert t({"topic": "t", "question": "q", "extra": 1}) == "Answer about t: q"


def test_repeated_variable_listed_once():
    t = template("{x} and {x} and {y}")
    assert t.variables == ("x", "y")
    assert t.render(x=1, y=2) == "1 and 1 and 2"


def test_escaped_braces():
    t = template("{{literal}} {name} }}{{")
    assert t.variables == ("name",)
    assert t.render(name="n") == "{literal} n }{"
    assert template("no placeholders {{}}").render() == "no placeholders {}"


def test_safe_format_specs():
    t = template("{score:.2f}|{name:>6}|{n:05d}|{big:,}|{p:.0%}")
    out = t.render(score=3.14159, name="ab", n=42, big=1234567, p=0.25)
    assert out == "3.14|    ab|00042|1,234,567|25%"


def test_values_are_not_interpreted():
    payload = "{__import__('os').system('echo hacked')} {x.__class__}"
    assert template("Q: {q}").render(q=payload) == f"Q: {payload}"


@pytest.mark.parametrize(("text", "column", "words"), [
    ("Hello {x.__class__}", 9, "attribute access"),
    ("{x.__init__.__globals__}", 3, "attribute access"),
    ("a {x[0]}", 5, "indexing"),
    ("{x[__class__]}", 3, "indexing"),
    ("{x!r}", 3, "conversion"),
    ("{}", 1, "Empty placeholder"),
    ("{0}", 2, "not a valid variable name"),
    ("{a-b}", 2, "not a valid variable name"),
    ("{ x }", 2, "spaces"),
    ("open {x", 6, "never closed"),
    ("close x}", 8, "single '}'"),
    ("{x:{y}}", 4, "Nested"),
    ("{x:>999999999}", 4, "larger than 1000"),
    ("{x:.5000f}", 4, "larger than 1000"),
    ("{x:abc}", 4, "Unsupported format spec"),
])
def test_unsafe_or_malformed_templates_are_rejected_with_the_column(text, column, words):
    with pytest.raises(TemplateError, match=words) as info:
        template(text)
    assert info.value.column + 1 == column
    assert f"(column {column})" in str(info.value)
    assert str(info.value).splitlines()[-1] == "  " + " " * (column - 1) + "^"


def test_missing_variables_at_build_time():
    with pytest.raises(TemplateError, match=r"'score', 'name'.*available fields: answer"):
        Template("{answer} {score} {name}", available=["answer"])
    assert template("{a}", available=["a", "b"]).variables == ("a",)


def test_build_time_check_against_signature_like_objects_and_frames():
    class Sig:
        input_names = ("question",)
        output_names = ("answer",)

    assert template("{question} -> {answer}", available=Sig()).variables
    with pytest.raises(TemplateError, match="'topic'"):
        template("{topic}", available=Sig())
    df = pd.DataFrame({"question": ["q"]})
    with pytest.raises(TemplateError, match="'answer'"):
        template("{answer}", available=df)


def test_missing_variables_at_render_time():
    t = template("{a} {b} {c}")
    with pytest.raises(TemplateError, match=r"no value for 'b', 'c'.*got a"):
        t.render(a=1)


def test_bad_value_for_a_format_spec():
    with pytest.raises(TemplateError, match=r"variable 's' \(value 'abc'\).*\{s:.2f\}"):
        template("{s:.2f}").render(s="abc")


def test_render_many_over_a_dataframe_and_rows():
    df = pd.DataFrame({"q": ["a", "b"], "n": [1, 2]}, index=[5, 6])
    out = template("{q}#{n}").render_many(df)
    assert out.tolist() == ["a#1", "b#2"] and out.index.tolist() == [5, 6]
    assert template("{q}").render(df.iloc[0]) == "a"          # a pandas row is a mapping
    assert template("{q}").render_many([{"q": 1}, {"q": 2}]) == ["1", "2"]
    with pytest.raises(TemplateError, match="no column 'z'"):
        template("{z}").render_many(df)


def test_templates_pickle_compare_and_route():
    t = template("{a}!")
    clone = pickle.loads(pickle.dumps(t))
    assert clone == t and hash(clone) == hash(t) and clone.render(a=1) == "1!"
    assert render_template("{a}?", {"a": 2}) == "2?"
    assert get_router().call("template.render", t, {"a": 3}) == "3!"
    assert get_router().plan("template.render").implementation == "native"


def test_non_string_template_and_non_mapping_values():
    with pytest.raises(TemplateError, match="is a string"):
        template(42)
    with pytest.raises(TemplateError, match="mapping"):
        template("{a}").render(["a"])
