"""The kernel's dspy settings reach the workers: the adapter (``dspy.configure``/``dspy.context``,
``adapter=`` instances, notebook-defined subclasses), ``track_usage`` and other settings; what
cannot be carried (callbacks) is refused clearly; and a ``from __future__ import annotations``
signature with pydantic types, defined in ``__main__``, runs in the workers. Every check
compares with plain DSPy in this process, through the same embedded LM."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dspy
import pandas as pd
import pytest

import dspex_lab
from dspex_lab.errors import ConfigurationError
from dspex_lab.kernel_settings import adapter_key, capture

ROOT = Path(__file__).resolve().parents[2]
MARK = "<<house-style-7>>"
QUESTIONS = pd.DataFrame({"question": ["What is 2 + 2?", "What is the capital of France?"]})


class MarkedAdapter(dspy.ChatAdapter):
    """A ChatAdapter that marks its system message (so the prompt shows who formatted it)."""

    def format(self, signature, demos, inputs):
        messages = super().format(signature, demos, inputs)
        messages[0]["content"] += f"\n{MARK}"
        return messages


class HouseStyle(dspy.Module):
    """Reads a custom dspy setting in ``forward``."""

    def __init__(self):
        super().__init__()
        self.qa = dspy.Predict("question -> answer")

    def forward(self, question):
        return dspy.Prediction(answer=self.qa(question=question).answer,
                               style=dspy.settings.get("house_style"))


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


def plain(module, lm, **inputs):
    with dspy.context(lm=lm):
        return module(**inputs)


def run(program, lm, **kw):
    return dspex_lab.run(program, QUESTIONS, lm=lm, progress=False, cache=False, **kw)


# -- the adapter --------------------------------------------------------------------------------

@contextlib.contextmanager
def configured(**settings):
    """``dspy.configure(**settings)`` for the block (``dspy.context`` when another thread
    owns DSPy's configuration)."""
    try:
        dspy.configure(**settings)
    except RuntimeError:
        with dspy.context(**settings):
            yield
        return
    try:
        yield
    finally:
        dspy.configure(**dict.fromkeys(settings))


def test_a_json_adapter_configured_in_the_kernel_reaches_the_workers(dspy_lm, prompts):
    with configured(adapter=dspy.JSONAdapter()):
        out = run("question -> answer", dspy_lm)
        pred = dspex_lab.predict("question -> answer", question=QUESTIONS.question[0],
                                 lm=dspy_lm, cache=False)
        expected = [plain(dspy.Predict("question -> answer"), dspy_lm, question=q).answer
                    for q in QUESTIONS.question]
    assert [p.adapter for p in prompts] == ["json"] * 5
    assert list(out["answer"]) == expected and pred.answer == expected[0]
    prompts.clear()
    run("question -> answer", dspy_lm)
    assert {p.adapter for p in prompts} == {"chat"}  # and back to DSPy's default


def test_a_custom_adapter_in_a_context_or_as_argument_formats_the_workers_prompts(dspy_lm,
                                                                                  prompts):
    with dspy.context(adapter=MarkedAdapter()):
        run("question -> answer", dspy_lm)
        dspex_lab.predict("question -> answer", question="What is 1 + 1?", lm=dspy_lm,
                          cache=False)
    run("question -> answer", dspy_lm, adapter=MarkedAdapter())
    dspex_lab.chain_of_thought("question -> answer", question="What is 1 + 1?", lm=dspy_lm,
                               cache=False, adapter=MarkedAdapter())
    assert len(prompts) == 6 and all(MARK in str(p.messages) for p in prompts)


def test_the_fast_transport_leaves_adapters_it_does_not_emulate_to_dspy(dspy_lm, prompts):
    out = run("question -> answer", dspy_lm, transport="fast", adapter=MarkedAdapter())
    assert out.attrs["usage"]["fast_rows"] == 0 and all(MARK in str(p.messages)
                                                        for p in prompts)
    prompts.clear()
    out = run("question -> answer", dspy_lm, transport="fast", adapter="json")
    assert out.attrs["usage"]["fast_rows"] == 0 and {p.adapter for p in prompts} == {"json"}
    out = run("question -> answer", dspy_lm, transport="fast")
    assert out.attrs["usage"]["fast_rows"] == 2  # the plain ChatAdapter still goes fast


def test_the_adapter_is_part_of_the_cache_key(dspy_lm):
    from dspex_lab.cache import ResultCache, set_cache

    set_cache(ResultCache(path=None))
    try:
        first = dspex_lab.run("question -> answer", QUESTIONS, lm=dspy_lm, progress=False)
        with dspy.context(adapter=dspy.JSONAdapter()):
            json_run = dspex_lab.run("question -> answer", QUESTIONS, lm=dspy_lm,
                                     progress=False)
        marked = dspex_lab.run("question -> answer", QUESTIONS, lm=dspy_lm, progress=False,
                               adapter=MarkedAdapter())
        again = dspex_lab.run("question -> answer", QUESTIONS, lm=dspy_lm, progress=False,
                              adapter=MarkedAdapter())
    finally:
        set_cache(None)
    assert not first["cached"].any() and not json_run["cached"].any()
    assert not marked["cached"].any() and again["cached"].all()
    assert adapter_key(dspy.JSONAdapter()) == "json" and adapter_key(None) is None
    assert adapter_key(MarkedAdapter()) == adapter_key(MarkedAdapter()) != adapter_key(
        dspy.ChatAdapter())


# -- other settings -----------------------------------------------------------------------------

def test_other_settings_travel_as_they_are(dspy_lm):
    with dspy.context(house_style="terse"):
        out = run(HouseStyle(), dspy_lm)
        pred = dspex_lab.predict(HouseStyle(), question="What is 2 + 2?", lm=dspy_lm,
                                 cache=False)
        expected = plain(HouseStyle(), dspy_lm, question="What is 2 + 2?")
    assert list(out["style"]) == ["terse", "terse"] and pred.style == expected.style == "terse"
    assert dict(capture().values) == {}  # nothing carried outside the context


def test_track_usage_in_the_kernel_gives_the_workers_usage(dspy_lm, lm_server):
    with dspy.context(track_usage=True):
        pred = dspex_lab.predict("question -> answer", question="What is 2 + 2?", lm=dspy_lm,
                                 cache=False)
        expected = plain(dspy.Predict("question -> answer"), dspy_lm, question="What is 2 + 2?")
    usage = pred.get_lm_usage()
    assert usage.keys() == expected.get_lm_usage().keys() == {dspy_lm.model}
    assert usage[dspy_lm.model]["prompt_tokens"] == pred._dspex.prompt_tokens > 0


def test_callbacks_are_refused_by_name_and_run_in_the_kernel_on_request(dspy_lm):
    class Seen(dspy.utils.callback.BaseCallback):
        def __init__(self):
            self.calls = 0

        def on_lm_start(self, call_id, instance, inputs):
            self.calls += 1

    seen = Seen()
    with dspy.context(callbacks=[seen]):
        with pytest.raises(ConfigurationError, match=r"callbacks holds Seen.*native"):
            dspex_lab.predict("question -> answer", question="hi", lm=dspy_lm, cache=False)
        with pytest.raises(ConfigurationError, match="callbacks"):
            run("question -> answer", dspy_lm)
        dspex_lab.predict("question -> answer", question="hi", lm=dspy_lm, cache=False,
                          implementation="native")
    assert seen.calls == 1


# -- notebook-defined (__main__) classes, in a fresh process -------------------------------------

def run_script(tmp_path, body, first_line=""):
    script = tmp_path / "notebook.py"
    script.write_text(first_line + textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), DSPEX_CACHE_DIR=str(tmp_path / "cache"),
        DSPY_CACHEDIR=str(tmp_path / "dspy"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PREAMBLE = """
    import json
    import dspy
    import pandas as pd
    import dspex_lab
    from dspex_lab.testing import embedded_lm
    from dspex_lab.workers import configure_pools

    configure_pools({"general": {"size": 1}})
"""


@pytest.mark.slow
def test_a_main_defined_adapter_configured_with_dspy_reaches_run_and_predict(tmp_path):
    result = run_script(tmp_path, PREAMBLE + """
    class Marked(dspy.ChatAdapter):
        def format(self, signature, demos, inputs):
            messages = super().format(signature, demos, inputs)
            messages[0]["content"] += "\\n<<main-mark>>"
            return messages

    seen = []
    with embedded_lm(responder=lambda p: seen.append(str(p.messages)) or {}) as (server, lm):
        dspy.configure(adapter=Marked())
        df = dspex_lab.run("question -> answer", pd.DataFrame({"question": ["What is 2 + 2?"]}),
                           lm=lm, progress=False, cache=False)
        pred = dspex_lab.predict("question -> answer", question="What is 2 + 2?", lm=lm,
                                 cache=False)
        with dspy.context(lm=lm):
            expected = dspy.Predict("question -> answer")(question="What is 2 + 2?").answer
    print(json.dumps({"marked": ["<<main-mark>>" in s for s in seen],
                      "answers": [df.loc[0, "answer"], pred.answer, expected],
                      "errors": df["error"].isna().tolist()}))
    """)
    assert result["marked"] == [True, True, True]
    assert result["errors"] == [True] and len(set(result["answers"])) == 1


@pytest.mark.slow
def test_future_annotations_with_pydantic_types_defined_in_main_run_in_workers(tmp_path):
    result = run_script(tmp_path, PREAMBLE + """
    import pydantic

    class Item(pydantic.BaseModel):
        name: str
        qty: int

    class Box(pydantic.BaseModel):          # recursive
        items: list[Item]
        inner: Box | None = None

    class Order(pydantic.BaseModel):        # names a model defined after it
        items: list[Item]
        note: Note | None = None

    class Note(pydantic.BaseModel):
        text: str

    class Pack(dspy.Signature):
        \"\"\"Pack the items.\"\"\"
        text: str = dspy.InputField()
        box: Box = dspy.OutputField()

    class Take(dspy.Signature):
        \"\"\"Take the order.\"\"\"
        text: str = dspy.InputField()
        order: Order = dspy.OutputField()

    class Wrap(dspy.Module):                 # its own forward: no signature of its own
        def __init__(self, sig):
            super().__init__()
            self.step = dspy.Predict(sig)

        def forward(self, text):
            return self.step(text=text)

    def answer(prompt):  # (the embedded LM's own answers for recursive models are too deep)
        box = {"items": [{"name": "apple", "qty": 3}], "inner": {"items": [], "inner": None}}
        return {"box": box} if "box" in prompt.output_names else {}

    text = "3 apples and 2 pears"
    out = {}
    with embedded_lm(responder=answer) as (server, lm):
        for name, sig, field in (("pack", Pack, "box"), ("take", Take, "order")):
            # dspex_lab first: before plain DSPy has used (and completed) the classes here
            got = [getattr(dspex_lab.predict(Wrap(sig), text=text, lm=lm, cache=False), field),
                   getattr(dspex_lab.predict(sig, text=text, lm=lm, cache=False), field),
                   getattr(dspex_lab.predict(dspy.Predict(sig), text=text, lm=lm,
                                             cache=False), field)]
            df = dspex_lab.run(sig, pd.DataFrame({"text": [text]}), lm=lm, progress=False,
                               cache=False)
            with dspy.context(lm=lm):
                expected = getattr(dspy.Predict(sig)(text=text), field)
            got.append(df.loc[0, field])
            out[name] = {"same": [g == expected for g in got],
                         "types": [type(g) is type(expected) for g in got],
                         "errors": df["error"].isna().tolist()}
    print(json.dumps(out))
    """, first_line="from __future__ import annotations\n")
    for name in ("pack", "take"):
        assert result[name] == {"same": [True] * 4, "types": [True] * 4, "errors": [True]}


# -- the call's timeout -------------------------------------------------------------------------

def test_a_hung_lm_is_an_lm_timeout_and_the_worker_is_kept(dspy_lm, lm_server):
    from dspex_lab.errors import LMTimeout
    from dspex_lab.workers import get_pool

    pool = get_pool()
    dspex_lab.predict("question -> answer", question="warm up", lm=dspy_lm, cache=False)
    timeouts = pool.stats["timeouts"]
    lm_server.configure(latency_ms=4000)
    with pytest.raises(LMTimeout, match=r"within 0\.5 s"):
        dspex_lab.predict("question -> answer", question="What is 2 + 2?", lm=dspy_lm,
                          cache=False, timeout=0.5)
    assert pool.stats["timeouts"] == timeouts  # no worker was killed for it
