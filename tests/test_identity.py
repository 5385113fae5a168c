"""Program identity (``dspex_lab.identity``, ``Program.key``): every edit that can change the
answers gives a new key; the same program built twice -- here or in another process -- gives
the same key. Notebook cells are imitated by executing source text in a ``__main__``
namespace, as IPython does (a new file name for every cell)."""

import concurrent.futures as cf
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dspy
import pandas as pd
import pytest

import dspex_lab.batch as batch
from dspex_lab.identity import fingerprint
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.programs import as_program
from dspex_lab.runtime import build_module
from dspex_lab.testing import fresh_run_state, make_spec, running_server

ROOT = Path(__file__).resolve().parents[1]
_CELLS = itertools.count()


def cell(source: str, ns: dict | None = None) -> dict:
    """Run ``source`` like a notebook cell in ``ns`` (a fresh ``__main__`` namespace)."""
    ns = {"__name__": "__main__", "dspy": dspy} if ns is None else ns
    exec(compile(textwrap.dedent(source), f"<ipython-cell-{next(_CELLS)}>", "exec"), ns)
    return ns


def key(obj, **kw) -> str:
    return as_program(obj, **kw).key


HOP = """
class Hop(dspy.Module):
    def __init__(self, num_hops=1):
        super().__init__()
        self.num_hops = num_hops
        self.generate = dspy.ChainOfThought("question -> answer")

    def forward(self, question):
        for _ in range(self.num_hops):
            question = self.generate(question=question).answer
        return dspy.Prediction(answer=question)
"""


# -- each edit gives a new key -------------------------------------------------------------------

def test_a_redefined_class_with_an_edited_forward_gets_a_new_key():
    ns = cell(HOP)
    first = key(ns["Hop"]())
    cell(HOP.replace("answer=question", "answer=question.upper()"), ns)
    assert key(ns["Hop"]()) != first
    cell(HOP, ns)  # the original text again: the original key
    assert key(ns["Hop"]()) == first


def test_a_changed_constructor_attribute_gets_a_new_key():
    ns = cell(HOP)
    assert key(ns["Hop"](num_hops=1)) != key(ns["Hop"](num_hops=2))
    assert key(ns["Hop"](num_hops=1)) == key(ns["Hop"](num_hops=1))


def test_a_changed_global_read_by_a_tool_or_by_forward_gets_a_new_key():
    ns = cell('''
        OFFSET = 100
        SCALE = {"factor": 2}
        def lookup(x: int) -> int:
            """Add the offset."""
            return x + OFFSET
        class Scaled(dspy.Module):
            def forward(self, x):
                return dspy.Prediction(answer=x * SCALE["factor"])
    ''')
    react, scaled = (key(dspy.ReAct("x: int -> answer: int", tools=[ns["lookup"]])),
                     key(ns["Scaled"]()))
    ns["OFFSET"] = 200
    ns["SCALE"]["factor"] = 3  # mutated in place, same object
    assert key(dspy.ReAct("x: int -> answer: int", tools=[ns["lookup"]])) != react
    assert key(ns["Scaled"]()) != scaled
    # a signature program's tools are walked too
    sig = key("x: int -> answer: int", module="react", tools=[ns["lookup"]])
    ns["OFFSET"] = 300
    assert key("x: int -> answer: int", module="react", tools=[ns["lookup"]]) != sig


def test_a_program_kept_and_run_again_is_keyed_as_it_is_now():
    """A Program held by the caller (``%%dspex --save``, a compiled program, a pipeline) is
    keyed again each time it is run: a tool's global that changed gives a new key."""
    ns = cell('''
        OFFSET = 1
        def lookup(x: int) -> int:
            """Add the offset."""
            return x + OFFSET
    ''')
    kept = as_program("x: int -> answer: int", module="react", tools=[ns["lookup"]])
    first = as_program(kept).key
    assert as_program(kept).key == first
    ns["OFFSET"] = 2
    assert as_program(kept).key != first


def test_a_global_function_called_by_forward_is_followed():
    ns = cell('''
        def helper(x):
            return x + 1
        class Uses(dspy.Module):
            def forward(self, x):
                return dspy.Prediction(answer=helper(x))
    ''')
    before = key(ns["Uses"]())
    cell("def helper(x):\n    return x + 2\n", ns)
    assert key(ns["Uses"]()) != before


def test_best_of_n_threshold_and_reward_function_are_part_of_the_key():
    ns = cell("def reward(args, pred):\n    return 1.0\n")
    predict = dspy.Predict("question -> answer")

    def best(threshold, reward):
        return key(dspy.BestOfN(predict, N=3, reward_fn=reward, threshold=threshold))

    first = best(0.5, ns["reward"])
    assert best(0.5, ns["reward"]) == first
    assert best(0.9, ns["reward"]) != first
    cell("def reward(args, pred):\n    return 0.0\n", ns)
    assert best(0.5, ns["reward"]) != first
    assert best(0.5, lambda a, p: 1.0) != best(0.5, lambda a, p: 0.5)


def test_signature_field_types_descriptions_and_instructions_are_part_of_the_key():
    keys = {
        key(dspy.Predict("text -> value: bool")),
        key(dspy.Predict("text -> value: list[int]")),
        key(dspy.Predict("text -> value: int")),
        key(dspy.Predict(dspy.Signature("text -> value: bool", "Answer carefully."))),
        key(dspy.Predict(dspy.Signature("text -> value: bool").with_updated_fields(
            "value", desc="is it true?"))),
        key(dspy.Predict(dspy.Signature("text -> value: bool").with_updated_fields(
            "value", prefix="Verdict:"))),
        key(dspy.ChainOfThought("text -> value: bool")),
    }
    assert len(keys) == 7
    assert key(dspy.Predict("text -> value: bool")) == key(dspy.Predict("text -> value: bool"))
    # signature programs: types, instructions, module kind and options
    sig_keys = {key("q -> a: int"), key("q -> a: float"), key("q -> a: int", module="cot"),
                key("q -> a: int", instructions="Be brief."),
                key("q -> a: int", module="react", max_iters=3),
                key("q -> a: int", module="react", max_iters=4)}
    assert len(sig_keys) == 6


def test_custom_output_types_are_identified_by_their_fields_and_members():
    source = '''
        import enum, pydantic
        class Color(enum.Enum):
            RED = "red"
            BLUE = "blue"
        class Paint(pydantic.BaseModel):
            color: Color
            coats: int = 1
        class Pick(dspy.Signature):
            """Pick a paint."""
            room: str = dspy.InputField()
            paint: Paint = dspy.OutputField(desc="the paint")
        prog = dspy.Predict(Pick)
    '''
    first = key(cell(source)["prog"])
    assert key(cell(source)["prog"]) == first  # defined again, unchanged
    assert key(cell(source.replace("coats: int = 1", "coats: float = 1"))["prog"]) != first
    assert key(cell(source.replace("coats: int = 1", "coats: int = 2"))["prog"]) != first
    assert key(cell(source.replace('BLUE = "blue"', 'BLUE = "navy"'))["prog"]) != first
    assert key(cell(source.replace("Pick a paint.", "Pick one."))["prog"]) != first


def test_classes_defined_in_a_loop_get_one_key_each():
    ns = cell('''
        classes = []
        for k in range(3):
            class Const(dspy.Module):
                K = k
                def forward(self, x):
                    return dspy.Prediction(answer=x + self.K)
            classes.append(Const)

        def make(k):
            class Closed(dspy.Module):
                def forward(self, x):
                    return dspy.Prediction(answer=x + k)
            return Closed
        closed = [make(k) for k in range(3)]
    ''')
    assert len({key(c()) for c in ns["classes"]}) == 3
    assert len({key(c()) for c in ns["closed"]}) == 3


def test_demos_and_predictor_lm_settings_are_part_of_the_key():
    plain = dspy.Predict("question -> answer")
    shown = dspy.Predict("question -> answer")
    shown.demos = [dspy.Example(question="2 + 2?", answer="4")]
    other = dspy.Predict("question -> answer")
    other.demos = [dspy.Example(question="2 + 2?", answer="5")]
    hot, cold = dspy.Predict("question -> answer"), dspy.Predict("question -> answer")
    hot.lm = dspy.LM("openai/some-model", api_key="x", temperature=0.9)
    cold.lm = dspy.LM("openai/some-model", api_key="y", temperature=0.1)
    assert len({key(plain), key(shown), key(other), key(hot), key(cold)}) == 5


# -- the same program gives the same key ---------------------------------------------------------

def test_runtime_state_that_does_not_decide_answers_is_ignored():
    ns = cell(HOP)
    a, b = ns["Hop"](), ns["Hop"]()
    b.generate.predict.history.append({"prompt": "x"})  # call history, random `stage` ids
    assert a.generate.predict.stage != b.generate.predict.stage
    assert key(a) == key(b)


SUBPROCESS_PROGRAM = '''
import enum, pydantic, dspy
from dspex_lab.programs import as_program
TAGS = {"alpha", "beta", "gamma", "delta"}
def tag(x: str) -> str:
    """Tag it."""
    return x if x in {"a", "b", "c"} else sorted(TAGS)[0]
class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"
class Verdict(pydantic.BaseModel):
    mood: Mood
    tags: set[str] = set()
class Judge(dspy.Module):
    def __init__(self):
        super().__init__()
        self.react = dspy.ReAct("text -> verdict: Verdict", tools=[tag])
        self.weights = {"a": 0.5, "b": 1.5}
        self.labels = TAGS
    def forward(self, text):
        return self.react(text=text)
print(as_program(Judge()).key)
'''


def test_an_identical_program_gets_the_same_key_in_another_process():
    env = dict(os.environ, PYTHONHASHSEED="12345",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, "-c", SUBPROCESS_PROGRAM], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    here = cell(SUBPROCESS_PROGRAM.replace("print(as_program(Judge()).key)",
                                           "KEY = as_program(Judge()).key"))["KEY"]
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == here


# -- odd values: never raise, stay fast ----------------------------------------------------------

def test_cycles_unpicklable_attributes_lambdas_and_big_dicts_are_fine_and_fast():
    source = '''
        import threading
        class Odd(dspy.Module):
            def __init__(self, size):
                super().__init__()
                self.me = self
                self.pair = [self, {"back": self}]
                self.lock = threading.Lock()
                self.fn = lambda x: x * 2
                self.table = {i: str(i) for i in range(size)}
                self.rows = [{"id": i, "name": f"n{i}"} for i in range(size)]
                self.predict = dspy.Predict("question -> answer")
    '''
    ns = cell(source)
    start = time.perf_counter()
    big = key(ns["Odd"](100_000))
    assert time.perf_counter() - start < 2.0  # ~50 ms here; generous for a loaded machine
    assert big == key(ns["Odd"](100_000))
    assert key(ns["Odd"](99_999)) != big
    cell(source.replace("x * 2", "x * 3"), ns)  # the lambda's code
    assert key(ns["Odd"](100_000)) != big


def test_a_typical_module_is_fingerprinted_well_under_5_ms():
    ns = cell('''
        CORPUS = [f"document number {i}" for i in range(1000)]
        def search(query, k=3):
            return [d for d in CORPUS if query in d][:k]
        class RAG(dspy.Module):
            def __init__(self, num_docs=3):
                super().__init__()
                self.num_docs = num_docs
                self.respond = dspy.ChainOfThought("context, question -> response")
            def forward(self, question):
                context = search(question, k=self.num_docs)
                return self.respond(context=context, question=question)
    ''')
    rag = ns["RAG"]()
    fingerprint(rag)  # code digests are cached per code object
    best = min(_timed(fingerprint, rag) for _ in range(5))
    assert best < 0.005


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


class _Hostile:
    """Raises from repr and pickling, and invents a new attribute on every lookup."""

    def __getattr__(self, name):
        return _Hostile()

    def __repr__(self):
        raise RuntimeError("no repr")

    def __reduce_ex__(self, protocol):
        raise TypeError("no pickle")


class _NoRepr:
    __slots__ = ()

    def __reduce_ex__(self, protocol):
        raise TypeError("no pickle")


def test_fingerprint_never_raises_and_never_hashes_an_address():
    assert isinstance(fingerprint(_Hostile()), str)
    assert isinstance(fingerprint([_Hostile(), {"x": _Hostile()}]), str)
    deep = []
    node = deep
    for _ in range(500):
        node.append([])
        node = node[0]
    assert fingerprint(deep) != fingerprint(deep)  # too deep to walk: a new key, never stale
    # default reprs carry memory addresses: they are left out
    assert fingerprint(_NoRepr()) == fingerprint(_NoRepr())
    assert fingerprint(threading.Lock()) == fingerprint(threading.Lock())
    assert fingerprint({1, "a", (2, "b")}) == fingerprint({(2, "b"), "a", 1})


# -- the caches use the key ----------------------------------------------------------------------

def test_a_worker_builds_the_edited_module_never_the_cached_old_one():
    ns = cell(HOP)
    old, new = ns["Hop"](num_hops=1), ns["Hop"](num_hops=2)
    assert build_module(as_program(old)) is old
    assert build_module(as_program(new)) is new
    assert build_module(as_program(ns["Hop"](num_hops=1))) is old  # same key: the cached one
    same_sig = as_program("question -> answer: int")
    assert build_module(same_sig) is build_module(as_program("question -> answer: int"))
    assert build_module(same_sig) is not build_module(as_program("question -> answer: float"))


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture
def run(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    spec = make_spec(server, EMBEDDED_MODEL)
    with fresh_run_state(server), cf.ThreadPoolExecutor(2) as pool:
        yield lambda program, df: batch.run(program, df, lm=spec, pool=pool, progress=False)


ADD = """
class Add(dspy.Module):
    def __init__(self):
        super().__init__()
        self.p = dspy.Predict("question -> answer")

    def forward(self, x):
        return self.p(question=f"What is {x} + 1?")
"""


def test_a_cached_batch_run_answers_an_edited_class_afresh(run):
    df = pd.DataFrame({"x": [1, 2, 3]})
    ns = cell(ADD)
    first = run(ns["Add"](), df)
    assert list(first["answer"]) == ["2", "3", "4"] and not first["cached"].any()
    cell(ADD.replace("+ 1?", "+ 10?"), ns)
    edited = run(ns["Add"](), df)
    assert list(edited["answer"]) == ["11", "12", "13"] and not edited["cached"].any()
    cell(ADD, ns)  # back to the first text: answered from the cache
    again = run(ns["Add"](), df)
    assert list(again["answer"]) == ["2", "3", "4"] and again["cached"].all()


def test_string_annotations_are_looked_up_where_the_class_was_defined():
    import types

    source = '''
        from __future__ import annotations
        import pydantic
        class Ask(dspy.Signature):
            """Size it."""
            thing: str = dspy.InputField()
            box: Box = dspy.OutputField()  # a forward reference: Box is defined below
            boxes: list[Box] = dspy.OutputField()
        class Box(pydantic.BaseModel):
            size: int
    '''
    module = types.ModuleType("dspex_test_cells")
    sys.modules[module.__name__] = module
    try:
        ns = cell(source, {"__name__": module.__name__, "dspy": dspy, **vars(module)})
        vars(module).update(ns)
        first = fingerprint(ns["Ask"])
        assert fingerprint(ns["Ask"]) == first
        cell("import pydantic\nclass Box(pydantic.BaseModel):\n    size: float\n", ns)
        vars(module).update(ns)  # Box edited; Ask names it only as text
        assert fingerprint(ns["Ask"]) != first
    finally:
        del sys.modules[module.__name__]
