"""Conformance (b) in a REAL IPython kernel: tutorial programs defined in notebook cells (true
``__main__`` code), run through ``dspex_lab.run``, ``%%dspex --with NAME`` and
``%dspex ... --df``, compared with plain DSPy in the same kernel on the same ``dspy.LM``.

One notebook runs once for the module (nbclient); every check cell prints one ``CHECK`` line
(JSON: the check's name and its differences, compared with ``compare.differences``), and each
test below asserts one check.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

SETUP = f"""\
%load_ext dspex_lab
import json, sys
sys.path.insert(0, {str(HERE)!r})
from compare import differences, prediction_fields
import dspy, pandas as pd
import dspex_lab
from dspex_lab.lm_server import LMServer
from dspex_lab.testing import make_lm
from dspex_lab.workers import configure_pools
configure_pools({{'general': {{'size': 1}}}})
server = LMServer().start()
lm = make_lm(server)
dspex_lab.configure(lm=lm)

def check(name, expected, got):
    print('CHECK ' + json.dumps({{'name': name, 'problems': differences(expected, got)}}))

def check_frame(name, expected, frame, inputs):
    from dspex_lab.batch.frame import RESULT_COLUMNS as meta
    problems = [f'row error: {{e}}' for e in frame['error'].dropna()]
    outputs = [c for c in frame.columns if c not in meta and c not in inputs]
    for i, want in enumerate(expected):
        fields = prediction_fields(want)
        if '<value>' in fields:
            fields = {{(outputs[0] if len(outputs) == 1 else '<one output column>'): want}}
        for k, v in fields.items():
            got = frame[k].iloc[i] if k in frame.columns else '<missing column>'
            problems += differences(v, got, f'row {{i}}.{{k}}')
    print('CHECK ' + json.dumps({{'name': name, 'problems': problems}}))

def attempt(name, fn):
    try:
        fn()
    except Exception as exc:
        problem = f'{{type(exc).__name__}}: {{exc}}'[:300]
        print('CHECK ' + json.dumps({{'name': name, 'problems': [problem]}}))
"""

DEFINE = '''\
from enum import Enum

CORPUS = {"Paris": "Paris is the capital and largest city of France.",
          "Eiffel Tower": "The Eiffel Tower is a wrought-iron tower in Paris, built in 1889.",
          "Hamlet": "Hamlet is a tragedy written by William Shakespeare around 1600."}

def search(query, k=2):
    words = set(query.lower().split())
    ranked = sorted(CORPUS.items(),
                    key=lambda kv: (-len(words & set(kv[1].lower().split())), kv[0]))
    return [f"{t} | {x}" for t, x in ranked[:k]]

class Hop(dspy.Module):
    def __init__(self, num_docs=2, num_hops=2):
        self.num_docs, self.num_hops = num_docs, num_hops
        self.generate_query = dspy.ChainOfThought("claim, notes -> query")
        self.append_notes = dspy.ChainOfThought(
            "claim, notes, context -> new_notes: list[str], titles: list[str]")

    def forward(self, claim: str):
        notes, titles = [], []
        for _ in range(self.num_hops):
            query = self.generate_query(claim=claim, notes=notes).query
            context = search(query, k=self.num_docs)
            prediction = self.append_notes(claim=claim, notes=notes, context=context)
            notes.extend(prediction.new_notes)
            titles.extend(prediction.titles)
        return dspy.Prediction(notes=notes, titles=sorted(set(titles)))

class EmailType(str, Enum):
    ORDER_CONFIRMATION = "order_confirmation"
    SUPPORT_REQUEST = "support_request"
    OTHER = "other"

class ClassifyEmail(dspy.Signature):
    """Classify the type of an email."""
    email_subject: str = dspy.InputField()
    email_body: str = dspy.InputField()
    email_type: EmailType = dspy.OutputField()

class Keywords(dspy.Module):
    def __init__(self):
        self.extract = dspy.Predict("question -> keywords: list[str]")

    def forward(self, question: str) -> list[str]:
        return self.extract(question=question).keywords

hop = Hop()
classify = dspy.Predict(ClassifyEmail)
claims = pd.DataFrame({"claim": ["The Eiffel Tower is in the capital of France.",
                                 "Hamlet was written by an English playwright."]})
qs = pd.DataFrame({"question": ["What is 2 + 3?", "What is 6 * 7?"]})
emails = pd.DataFrame({"email_subject": ["Order #1234 confirmed", "Server down"],
                       "email_body": ["Thanks for your order.", "Please help, it is urgent."]})

def plain(module, frame):
    with dspy.context(lm=lm):
        return [module(**row) for row in frame.to_dict("records")]
'''

RUN_CHECKS = '''\
attempt("run_hop", lambda: check_frame(
    "run_hop", plain(Hop(), claims),
    dspex_lab.run(Hop(), claims, cache=False, progress=False), ["claim"]))
attempt("run_enum_signature", lambda: check_frame(
    "run_enum_signature", plain(dspy.Predict(ClassifyEmail), emails),
    dspex_lab.run(dspy.Predict(ClassifyEmail), emails, cache=False, progress=False),
    ["email_subject", "email_body"]))
attempt("run_returns_list", lambda: check_frame(
    "run_returns_list", plain(Keywords(), qs),
    dspex_lab.run(Keywords(), qs, cache=False, progress=False), ["question"]))
'''

MAGIC_WITH = ("%%dspex --with hop --out hop_magic --no-cache\n"
              "claim: The Eiffel Tower is in the capital of France.")
MAGIC_WITH_BARE = ("%%dspex --with hop --out hop_bare --no-cache\n"
                   "The Eiffel Tower is in the capital of France.")
MAGIC_WITH_BARE_CHECK = '''\
attempt("magic_with_module_bare_body", lambda: check(
    "magic_with_module_bare_body", prediction_fields(plain(Hop(), claims[:1])[0]),
    prediction_fields(hop_bare)))
'''
MAGIC_WITH_CHECK = '''\
attempt("magic_with_module", lambda: check(
    "magic_with_module", prediction_fields(plain(Hop(), claims[:1])[0]),
    prediction_fields(hop_magic)))
'''
MAGIC_DF = "hop_df << %dspex --with hop --df claims --no-cache"
MAGIC_DF_CHECK = '''\
attempt("magic_df_module", lambda: check_frame("magic_df_module", plain(Hop(), claims), hop_df,
                                               ["claim"]))
'''
MAGIC_SIG_DF = "sig_df << %dspex question -> answer: int --df qs --no-cache"
MAGIC_SIG_DF_CHECK = '''\
attempt("magic_df_signature", lambda: check_frame(
    "magic_df_signature", plain(dspy.Predict("question -> answer: int"), qs), sig_df,
    ["question"]))
'''
MAGIC_ENUM = ("%%dspex --with classify --out classify_magic --no-cache\n"
              "email_subject: Order #1234 confirmed\nemail_body: Thanks for your order.")
MAGIC_ENUM_CHECK = '''\
attempt("magic_with_enum_signature", lambda: check(
    "magic_with_enum_signature", prediction_fields(plain(classify, emails[:1])[0]),
    prediction_fields(classify_magic)))
'''
REDEFINE_1 = '''\
class Shout(dspy.Module):
    def __init__(self):
        self.p = dspy.Predict("question -> answer")

    def forward(self, question):
        return dspy.Prediction(answer=self.p(question=question).answer + "!")

first = dspex_lab.run(Shout(), qs, cache=False, progress=False)
'''
REDEFINE_2 = '''\
class Shout(dspy.Module):
    def __init__(self):
        self.p = dspy.Predict("question -> answer")

    def forward(self, question):
        return dspy.Prediction(answer=self.p(question=question).answer + "?")

attempt("redefined_class", lambda: check_frame(
    "redefined_class", plain(Shout(), qs),
    dspex_lab.run(Shout(), qs, cache=False, progress=False), ["question"]))
'''
FUTURE = '''\
from __future__ import annotations
from typing import Literal
from pydantic import BaseModel

class Verdict(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    score: float

class Review(dspy.Signature):
    """Judge the review."""
    review: str = dspy.InputField()
    verdict: Verdict = dspy.OutputField()

reviews = pd.DataFrame({"review": ["What a great and happy product, i love it",
                                   "Terrible, awful, i hate it"]})
attempt("future_annotations", lambda: check_frame(
    "future_annotations", plain(dspy.Predict(Review), reviews),
    dspex_lab.run(dspy.Predict(Review), reviews, cache=False, progress=False), ["review"]))
'''

CELLS = [SETUP, DEFINE, RUN_CHECKS, MAGIC_WITH, MAGIC_WITH_CHECK, MAGIC_WITH_BARE,
         MAGIC_WITH_BARE_CHECK, MAGIC_DF, MAGIC_DF_CHECK,
         MAGIC_SIG_DF, MAGIC_SIG_DF_CHECK, MAGIC_ENUM, MAGIC_ENUM_CHECK, REDEFINE_1, REDEFINE_2,
         FUTURE]


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict[str, list[str]]:
    """Run the notebook once; the problems found by each check, by name."""
    tmp = tmp_path_factory.mktemp("kernel")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]),
               DSPEX_CACHE_DIR=str(tmp / "cache"), DSPY_CACHEDIR=str(tmp / "dspy"))
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(tmp)}})
    client.km = client.create_kernel_manager()
    client.km.kernel_spec.argv[0] = sys.executable
    client.start_new_kernel(env=env)
    client.execute(cleanup_kc=True, reset_kc=False)
    found: dict[str, list[str]] = {}
    log: list[str] = []
    for i, cell in enumerate(nb.cells):
        for out in cell.outputs:
            text = out.get("text", "") or "\n".join(out.get("traceback", []))
            log.append(f"[cell {i}] {text[-500:]}")
            for line in text.splitlines():
                if line.startswith("CHECK "):
                    item = json.loads(line[6:])
                    found[item["name"]] = item["problems"]
    found["__log__"] = log
    return found


CHECKS = ["run_hop", "run_enum_signature", "run_returns_list", "magic_with_module",
          "magic_with_module_bare_body", "magic_df_module", "magic_df_signature",
          "magic_with_enum_signature", "redefined_class", "future_annotations"]


@pytest.mark.parametrize("name", CHECKS)
def test_notebook_cell_matches_plain_dspy(name, checks):
    assert name in checks, f"check {name} did not run; the notebook said:\n" + "\n".join(
        checks["__log__"])
    errors = [line for line in checks["__log__"] if "Error" in line]
    assert not checks[name], f"{name}: dspex_lab differs from plain DSPy:\n  " + "\n  ".join(
        checks[name]) + "\nerrors the notebook showed:\n" + "\n".join(errors)
