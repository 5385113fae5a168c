"""Typed values through real worker processes: kernel -> worker -> result frame, exactly.

The classes are made inside a function, as a notebook cell makes them: they reach the workers
by value (cloudpickle) and must come back as the kernel's own classes. (No ``from __future__
import annotations`` here: signature classes defined in a function need real annotations.)
"""

import enum
import os

import dspy
import pandas as pd
import pydantic
import pytest

import dspex_lab.batch as batch
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_lm, make_spec, running_server
from dspex_lab.workers import WorkerPool

pytestmark = pytest.mark.slow


def notebook_types():
    """Types defined the way a notebook defines them (not importable by name)."""

    class Item(pydantic.BaseModel):
        name: str
        qty: int

    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    class Typed(dspy.Signature):
        question: str = dspy.InputField()
        items: list[Item] = dspy.OutputField()
        color: Color = dspy.OutputField()
        groups: dict[str, list[str]] = dspy.OutputField()
        n: int = dspy.OutputField()
        tags: list[str] = dspy.OutputField()

    class Wrapped(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dspy.Predict(Typed)

        def forward(self, question: str) -> dspy.Prediction:
            return self.step(question=question)

    class Echo(dspy.Module):
        def forward(self, history, meta, model):
            return dspy.Prediction(history_out=history, meta_out=meta, model_out=model)

    return Item, Color, Typed, Wrapped, Echo


Item, Color, Typed, Wrapped, Echo = notebook_types()
OUTPUTS = ["items", "color", "groups", "n", "tags"]


@pytest.fixture(scope="module")
def pool():
    with WorkerPool("batch-types-tests", size=2) as workers:
        assert workers.ready(timeout=120)
        yield workers


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(server):
        yield


@pytest.fixture
def spec(server):
    return make_spec(server, EMBEDDED_MODEL)


def deep_types(value):
    if isinstance(value, list | tuple):
        return type(value), [deep_types(v) for v in value]
    if isinstance(value, dict):
        return type(value), {k: deep_types(v) for k, v in value.items()}
    return type(value)


def assert_same(got: list, want: list) -> None:
    assert got == want
    assert [deep_types(v) for v in got] == [deep_types(v) for v in want]


def test_typed_outputs_from_workers_are_dspys_values_and_the_kernels_classes(server, spec,
                                                                              pool, tmp_path):
    df = pd.DataFrame({"question": ["Tell me about cats", "hello there", "Name three colors",
                                    "weather today"]})
    with dspy.context(lm=make_lm(server, EMBEDDED_MODEL)):
        expected = [dict(dspy.Predict(Typed)(**row).items()) for row in df.to_dict("records")]
    out = batch.run(Wrapped(), df, lm=spec, pool=pool, progress=False, chunk_size=2,
                    spill=tmp_path / "spill")
    assert out["error"].isna().all(), out["error"].tolist()
    for name in OUTPUTS:
        assert_same(out[name].tolist(), [row[name] for row in expected])
    assert all(type(m) is Item for items in out["items"] for m in items)  # the kernel's class
    assert all(type(c) is Color for c in out["color"])
    resumed = batch.run(Wrapped(), df, lm=spec, pool=pool, progress=False, cache=False,
                        spill=tmp_path / "spill", resume=True)
    cached = batch.run(Wrapped(), df, lm=spec, pool=pool, progress=False)
    assert cached["cached"].all() and resumed.attrs["usage"]["resumed"] == len(df)
    for again in (resumed, cached):
        for name in OUTPUTS:
            assert_same(again[name].tolist(), out[name].tolist())


def test_object_inputs_reach_worker_modules_exactly(spec, pool):
    df = pd.DataFrame({
        "history": [dspy.History(messages=[{"question": "hi", "answer": "hello"}]),
                    dspy.History(messages=[])],
        "meta": [{"a": 1}, {"b": [2, 3]}],
        "model": [Item(name="a", qty=1), None],
    })
    out = batch.run(Echo(), df, lm=spec, pool=pool, progress=False)
    assert out["error"].isna().all(), out["error"].tolist()
    for name in df.columns:
        assert_same(out[f"{name}_out"].tolist(), df[name].tolist())


RESTART_SCRIPT = '''
import concurrent.futures as cf, sys
import dspy, pandas as pd, pydantic
import dspex_lab.batch as batch
from dspex_lab.testing import make_spec, running_server
from dspex_lab.workers import WorkerPool

class Item(pydantic.BaseModel):  # a notebook class: __main__.Item
    name: str

class Make(dspy.Module):
    def forward(self, question):
        return dspy.Prediction(item=Item(name=question))

resume = sys.argv[2] == "resume"
with running_server() as srv:
    pool = cf.ThreadPoolExecutor(1) if resume else WorkerPool("restart-test", size=1)
    with pool:
        out = batch.run(Make(), pd.DataFrame({"question": ["a", "b"]}), lm=make_spec(srv),
                        pool=pool, progress=False, cache=False, spill=sys.argv[1],
                        resume=resume)
print(out.attrs["usage"].get("resumed", 0), all(type(v) is Item for v in out["item"]),
      [v.name for v in out["item"]])
'''


def test_resuming_after_a_kernel_restart_gives_the_notebooks_own_classes(tmp_path):
    """Workers pickle a notebook's classes by value; the spill must name them, so that the
    next kernel's resumed rows are instances of the class it defines again."""
    import subprocess
    import sys

    script = tmp_path / "notebook.py"
    script.write_text(RESTART_SCRIPT)
    spill = str(tmp_path / "spill")
    outputs = []
    for mode in ("first", "resume"):
        done = subprocess.run([sys.executable, str(script), spill, mode], capture_output=True,
                              text=True, timeout=180, env={**os.environ, "DSPEX_CACHE_DIR":
                                                           str(tmp_path / "cache")})
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout.strip().splitlines()[-1])
    assert outputs == ["0 True ['a', 'b']", "2 True ['a', 'b']"]
