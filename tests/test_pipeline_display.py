"""Notebook views: the pipeline graph (HTML/SVG), Markdown/text outlines, and the run trace."""

import re
from html.parser import HTMLParser

from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when
from dspex_lab.pipeline.display import COLOURS


def clean(question: str) -> str:
    return question.strip()


def risky(question: str) -> str:
    raise ValueError("<bad> & worse")


class _Checker(HTMLParser):
    """Counts open/close tags so unbalanced markup fails the test."""

    def __init__(self):
        super().__init__()
        self.stack = []
        self.void = {"line", "polygon", "br"}

    def handle_starttag(self, tag, attrs):
        if tag not in self.void:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag not in self.void:
            assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def balanced(html: str) -> bool:
    checker = _Checker()
    checker.feed(html)
    return checker.stack == []


def sample() -> Pipeline:
    return Pipeline([
        native(clean, output="question"),
        parallel(dspy_step("question -> answer", module="cot"), dspy_step("question -> topic"),
                 timeout=5, name="fan"),
        map("items", dspy_step("item -> label"), name="each"),
        when("flag", dspy_step("answer -> review"), name="check"),
    ], name="demo")


def test_graph_html_shows_every_step_and_grouping():
    html = sample()._repr_html_()
    assert balanced(html) and "<svg" in html and "<script" not in html
    for name in ("clean", "answer", "topic", "label", "review", "fan", "each", "check"):
        assert f'data-step="{name}"' in html or f"· {name}" in html
    assert "parallel · fan · timeout 5 s" in html
    assert "map over items as item · each" in html and "when flag · check" in html
    assert COLOURS["native"][1] in html and COLOURS["dspy"][1] in html
    assert "inputs: <code>question, items, flag</code>" in html
    assert len(re.findall(r'class="dspex-step dspex-dspy"', html)) == 4


def test_text_and_markdown_outlines():
    p = sample()
    text = repr(p)
    assert text.splitlines()[0].startswith("Pipeline 'demo': question: str, items")
    assert "  - fan  parallel (timeout 5 s)" in text and "    - answer  dspy/cot" in text
    md = p._repr_markdown_()
    assert md.startswith("**Pipeline `demo`**") and "- **clean** `native/clean" in md


def test_trace_html_escapes_and_shows_errors():
    p = Pipeline([native(clean, output="question"), native(risky, output="x")], name="t")
    r = p(question=" <q> ", continue_on_error=True)
    html = r._repr_html_()
    assert balanced(html)
    assert "clean" in html and "risky" in html
    assert "&lt;bad&gt; &amp; worse" in html and "<bad>" not in html
    assert "question=&#x27;&lt;q&gt;&#x27;" in html
    assert "1 error" in html
    md = r._repr_markdown_()
    assert "| clean | native | native | ok |" in md
    text = repr(r)
    assert text.startswith("PipelineResult(t: 2 steps") and "✗ risky" in text


def test_trace_truncates_long_outputs():
    p = Pipeline([native(lambda question: "x" * 5000, output="long", name="big")])
    html = p(question="q")._repr_html_()
    assert len(html) < 3000 and ("…" in html or "..." in html)
