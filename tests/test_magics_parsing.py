"""The pure parts of ``%%dspex``: splitting the line, reading the body, ``{name}`` lookups."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dspex_lab.errors import ConfigurationError, TemplateError, ValidationError
from dspex_lab.magics._line import split_line
from dspex_lab.magics.body import interpolate, parse_body, parse_columns
from dspex_lab.magics.magic import DspexMagics
from dspex_lab.signatures import signature

PARSER = DspexMagics.dspex.parser


@pytest.mark.parametrize(("line", "target", "sig", "argv"), [
    ("question -> answer", None, "question -> answer", []),
    ("question -> answer: int --module cot --out x", None, "question -> answer: int",
     ["--module", "cot", "--out", "x"]),
    ('q -> a: str "short, one word" --lm=fast', None, 'q -> a: str "short, one word"',
     ["--lm=fast"]),
    ("res << q -> a --df df", "res", "q -> a", ["--df", "df"]),
    ("res<<q -> a", "res", "q -> a", []),
    ("--with qa --no-cache", None, "", ["--with", "qa", "--no-cache"]),
    ("--mod cot q -> a", None, "q -> a", ["--module", "cot"]),
    ("q -> a -m react --tools 'add,mul'", None, "q -> a", ["-m", "react", "--tools", "add,mul"]),
])
def test_split_line(line, target, sig, argv):
    parts = split_line(line, PARSER)
    assert (parts.target, parts.signature, parts.argv) == (target, sig, argv)


def test_unknown_and_ambiguous_options():
    with pytest.raises(ConfigurationError, match="did you mean --concurrency"):
        split_line("q -> a --concurency 3", PARSER)
    with pytest.raises(ConfigurationError, match=r"^%dspex has no option --zzz\. Run %dspex\?"):
        split_line("q -> a --zzz", PARSER, "%dspex")


ONE = signature("question -> answer")
TWO = signature("context, question -> answer")
TYPED = signature("docs: list[str], k: int, flag: bool, note: str | None -> answer")


def test_one_input_takes_the_whole_body():
    assert parse_body("\nWhat: is this?\nline 2\n", ONE, {}) == {"question":
                                                                  "What: is this?\nline 2"}
    assert parse_body("question: Why?", ONE, {}) == {"question": "Why?"}


def test_field_lines_keep_other_colons_and_continuations():
    body = "context: a: b\n  more\nnot_a_field: c\nquestion: q?"
    assert parse_body(body, TWO, {}) == {"context": "a: b\n  more\nnot_a_field: c",
                                         "question": "q?"}


def test_text_stays_text_typed_values_are_yaml():
    body = "docs: [a, b]\nk: 3\nflag: yes\nnote: no"
    assert parse_body(body, TYPED, {}) == {"docs": ["a", "b"], "k": 3, "flag": True,
                                           "note": "no"}


def test_quoted_and_block_strings():
    assert parse_body('question: "say \\"hi\\": now"', ONE, {}) == {"question": 'say "hi": now'}
    assert parse_body("question: >\n  folded\n  text\n", ONE, {}) == {"question": "folded text"}


def test_optional_inputs_may_be_left_out_required_ones_may_not():
    assert parse_body("docs: []\nk: 1\nflag: false", TYPED, {}) == {"docs": [], "k": 1,
                                                                     "flag": False}
    with pytest.raises(ValidationError) as err:
        parse_body("flag: true", TYPED, {})
    assert [p[0] for p in err.value.problems] == ["docs", "k"]


def test_stray_lines_are_reported():
    with pytest.raises(ValidationError, match="the line 'hello' gives no input"):
        parse_body("hello\ncontext: c\nquestion: q", TWO, {})


def test_program_without_signature_takes_every_field_line():
    assert parse_body("a: 1\nb: two", None, {}) == {"a": "1", "b": "two"}


def test_interpolate():
    ns = {"user": SimpleNamespace(name="Ada", tags=["x", "y"]), "d": {"k": 5}, "docs": [1]}
    assert interpolate("Hi {user.name} {user.tags[1]} {d[k]} {user.name!r}", ns) == \
        "Hi Ada y 5 'Ada'"
    assert interpolate("  {docs}  ", ns) == [1]
    assert interpolate("{{docs}} and {a: 1} and {'x'}", ns) == "{docs} and {a: 1} and {'x'}"
    with pytest.raises(TemplateError, match="no variable 'missing'"):
        interpolate("{missing}", ns)
    with pytest.raises(TemplateError, match="cannot be looked up"):
        interpolate("{user.nope}", ns)
    with pytest.raises(TemplateError, match="has no item"):
        interpolate("{d[zz]}", ns)


def test_interpolated_typed_value_is_read_as_yaml():
    assert parse_body("docs: {x}\nk: {n}\nflag: {f}", TYPED, {"x": ["a"], "n": "4", "f": 1}) \
        == {"docs": ["a"], "k": "4", "flag": 1}
    assert parse_body("docs: [{a}, b]\nk: 1{n}\nflag: true", TYPED, {"a": "z", "n": 2}) \
        == {"docs": ["z", "b"], "k": 12, "flag": True}


def test_parse_columns():
    assert parse_columns("", TWO) is None
    assert parse_columns("question: q_text\ncontext: ctx", TWO) == {"question": "q_text",
                                                                    "context": "ctx"}
    with pytest.raises(ValidationError, match="field: column"):
        parse_columns("just text", TWO)
