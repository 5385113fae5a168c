"""Per-row timeouts (#14 item 4): a stuck step of any kind fails only its row, with
``StepTimeout``, in the kernel and in batch workers; the good rows of the same chunk succeed."""

import sys
import threading
import time

import cloudpickle
import pandas as pd
import pytest

from dspex_lab import batch
from dspex_lab.errors import StepTimeout
from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when

cloudpickle.register_pickle_by_value(sys.modules[__name__])




def maybe_stuck(x: int) -> int:
    if x < 0:
        threading.Event().wait()  # never set: never returns
    return x * 2


def stuck_test(state) -> bool:
    if state["x"] < 0:
        threading.Event().wait()  # never set: never returns
    return True


def spin(x: int) -> int:
    if x < 0:
        for _ in range(3000):  # busy for 30 s: far past every timeout below
            time.sleep(0.01)
    return x + 1


@pytest.mark.parametrize("shape", ["native", "when", "map", "parallel"])
def test_kernel_run_timeout_bounds_every_step_kind(shape):
    step = {"native": native(maybe_stuck, output="y"),
            "when": when(stuck_test, native(maybe_stuck, output="y"), name="gate"),
            "map": map("xs", native(maybe_stuck, inputs=["x"], output="y"), as_="x",
                       name="each"),
            "parallel": parallel(native(maybe_stuck, output="y"), native(spin, output="z"),
                                 name="fan")}[shape]
    p = Pipeline([step], name=shape)
    inputs = {"x": -1, "xs": [1, -1]} if shape == "map" else {"x": -1}
    t0 = time.perf_counter()
    with pytest.raises(StepTimeout, match=r"did not finish within the timeout of 0\.3 s"):
        try:
            p.run(inputs, timeout=0.3)
        except Exception as exc:  # StepFailed wraps the StepTimeout that failed the run
            raise next((e for e in getattr(exc, "errors", []) if isinstance(e, StepTimeout)),
                       exc) from None
    assert time.perf_counter() - t0 < 3
    ok = p.run({"x": 2, "xs": [1, 2]} if shape == "map" else {"x": 2}, timeout=5)
    assert ok.ok


def test_kernel_timeout_with_continue_on_error_records_the_step():
    p = Pipeline([native(maybe_stuck, output="y"), native(spin, inputs=["x"], output="z")])
    r = p.run({"x": -1}, timeout=0.3, continue_on_error=True)
    failed = {e.name: e for e in r.errors}
    assert "StepTimeout" in failed["maybe_stuck"].error
    assert isinstance(failed["maybe_stuck"].exception, StepTimeout)


def test_to_dspy_timeout_bounds_an_inline_module(dspy_lm):
    import dspy

    module = Pipeline([native(maybe_stuck, output="y"), dspy_step("question -> answer")]
                      ).to_dspy(timeout=0.3)
    with dspy.context(lm=dspy_lm), pytest.raises(StepTimeout):
        module(x=-1, question="What is 2 + 3?")
    with dspy.context(lm=dspy_lm):
        assert module(x=1, question="What is 2 + 3?").answer == "5"


@pytest.mark.slow
def test_batch_run_timeout_fails_only_the_stuck_rows(dspy_lm):
    p = Pipeline([native(maybe_stuck, output="y"), native(spin, inputs=["x"], output="z"),
                  dspy_step("question -> answer")], name="stuck")
    xs = [1, -1, 2, 3, -1, 4]
    df = pd.DataFrame({"x": xs, "question": [f"What is {x} + 1?" for x in xs]})
    t0 = time.perf_counter()
    out = batch.run(p, df, lm=dspy_lm, progress=False, cache=False, max_retries=0, timeout=2)
    assert time.perf_counter() - t0 < 30
    assert len(out) == len(xs)
    bad = [i for i, x in enumerate(xs) if x < 0]
    assert out["status"].tolist() == ["error" if i in bad else "ok" for i in range(len(xs))]
    assert set(out.loc[bad, "error_type"]) == {"StepTimeout"}
    assert out.loc[bad, "error"].str.contains("did not finish within the timeout").all()
    good = [i for i in range(len(xs)) if i not in bad]
    assert out.loc[good, "answer"].tolist() == [str(xs[i] + 1) for i in good]
