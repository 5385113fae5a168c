"""Conformance (b), the wider set: the programs of ``programs_more.py`` give through
``dspex_lab.run`` and ``dspex_lab.predict`` exactly what plain DSPy gives (values AND types),
and DataFrame inputs reach DSPy as ``df.to_dict("records")`` would hand them over.

What dspex_lab cannot do as DSPy does (async modules) raises a ``dspex_lab.errors`` error.
"""

from __future__ import annotations

import dataclasses

import cloudpickle
import dspy
import numpy as np
import pandas as pd
import programs_more as M
import pytest
from compare import _completions as completions
from compare import assert_same, differences, prediction_fields

import dspex_lab
from dspex_lab.workers import WorkerPool
from tests.conformance.test_programs import assert_frame_matches, plain, run_frame

cloudpickle.register_pickle_by_value(M)


def cases() -> list:
    return [pytest.param(c, id=c.name) for c in M.CASES]


@pytest.fixture(scope="module")
def pool():
    with WorkerPool("conformance-more", size=1) as workers:
        assert workers.ready(timeout=120)
        yield workers


@pytest.fixture
def lm(dspy_lm, lm_server):
    lm_server.configure(responder=M.responder)
    return dspy_lm


@pytest.mark.parametrize("case", cases())
def test_run_matches_plain_dspy(case, lm, pool):
    expected = plain(case, lm)
    frame = run_frame(case.make(), case.rows, lm, pool, adapter=case.adapter)
    assert_frame_matches(expected, frame, list(case.rows[0]))


@pytest.mark.parametrize("case", cases())
def test_predict_matches_plain_dspy(case, lm):
    expected = plain(case, lm)
    module = case.make()
    problems: list[str] = []
    for i, (row, want) in enumerate(zip(case.rows, expected, strict=True)):
        got = dspex_lab.predict(module, lm=lm, cache=False, adapter=case.adapter, **row)
        fields = prediction_fields(want)
        got_fields = prediction_fields(got)
        if "<value>" in fields and len(got_fields) == 1:
            got_fields = {"<value>": next(iter(got_fields.values()))}
        problems += differences(fields, got_fields, f"row {i}")
        if isinstance(want, dspy.Prediction):  # n=3: every completion, not only the first
            problems += differences(completions(want), completions(got), f"row {i}.completions")
    assert not problems, "dspex_lab.predict differs from plain DSPy:\n  " + "\n  ".join(problems)


# -- n=3 completions, threads, DataFrame values, what cannot run ---------------------------------


def test_predict_keeps_every_completion(lm):
    """``dspy.Predict(sig, n=3)``: ``predict`` gives all three completions, as DSPy does."""
    case = M.BY_NAME["predict_n3"]
    want = plain(case, lm)[0]
    got = dspex_lab.predict(case.make(), lm=lm, cache=False, **case.rows[0])
    assert len(got.completions) == len(want.completions) == 3
    assert_same(want, got, "predict")


def test_batch_inside_forward_with_rows_in_threads(lm, pool):
    """``module.batch`` inside forward, with a worker's rows running in threads at once:
    DSPy clears tqdm's unlocked bar registry per batch (a race; ``KeyError: <weakref>``)."""
    case = M.BY_NAME["batch_inside"]
    rows = case.rows * 4
    expected = plain(dataclasses.replace(case, rows=rows), lm)
    frame = run_frame(case.make(), rows, lm, pool, concurrency=4)
    assert_frame_matches(expected, frame, ["question"])


class Seen(dspy.Module):
    """What ``forward`` receives: each value's type and repr (no LM call)."""

    def forward(self, n, x, when, label, note=None):
        values = (n, x, when, label, note)
        return dspy.Prediction(types=[type(v).__name__ for v in values],
                               reprs=[repr(v) for v in values])


def test_dataframe_values_reach_forward_as_to_dict_records(lm, pool):
    """A DataFrame's values reach ``forward`` as ``df.to_dict("records")`` hands them to a
    plain DSPy loop: Python ints/floats/str, ``pd.Timestamp``, and the DataFrame's own
    missing values (NaN in float and ``str`` columns, NaT, None in object columns)."""
    df = pd.DataFrame({"n": np.array([1, 2], dtype=np.int64), "x": [1.5, 2.5],
                       "when": pd.to_datetime(["2024-01-01 00:00:00", "2024-02-01 10:30:00"]),
                       "label": ["a", "b"], "note": ["kept", None]})
    with dspy.context(lm=lm):
        expected = [Seen()(**row) for row in df.to_dict("records")]
    frame = dspex_lab.run(Seen(), df, lm=lm, pool=pool, cache=False, progress=False)
    assert_frame_matches(expected, frame, list(df.columns))
    gaps = pd.DataFrame({"n": [1, 2], "x": [1.5, np.nan],
                         "when": pd.to_datetime(["2024-01-01 00:00:00", None]),
                         "label": pd.Series(["a", None], dtype=object),
                         "note": ["kept", np.nan]})
    with dspy.context(lm=lm):
        expected = [Seen()(**row) for row in gaps.to_dict("records")]
    frame = dspex_lab.run(Seen(), gaps, lm=lm, pool=pool, cache=False, progress=False)
    assert_frame_matches(expected, frame, list(gaps.columns))


class Measured(dspy.Signature):
    """Answer using the measurement."""

    question: str = dspy.InputField()
    reading: float = dspy.InputField()
    context: str | None = dspy.InputField()
    answer: str = dspy.OutputField()


@pytest.mark.parametrize("make", [
    pytest.param(lambda: Measured, id="signature_class"),
    pytest.param(lambda: dspy.Predict(Measured), id="predict_module"),
])
def test_dataframe_nan_in_typed_inputs_as_plain_dspy(make, lm, pool):
    """NaN in a ``float`` and in a ``str | None`` input: the row runs with the NaN that
    ``df.to_dict("records")`` gives plain DSPy (not an invalid row, not None)."""
    df = pd.DataFrame({"question": ["How warm?", "How cold?", "How far?"],
                       "reading": [21.5, np.nan, 3.0], "context": ["lab", "field", np.nan]})
    with dspy.context(lm=lm):
        module = dspy.Predict(Measured)
        expected = [module(**row) for row in df.to_dict("records")]
    frame = dspex_lab.run(make(), df, lm=lm, pool=pool, cache=False, progress=False)
    assert_frame_matches(expected, frame, list(df.columns))


class AsyncOnly(dspy.Module):
    def __init__(self):
        self.predict = dspy.Predict("question -> answer")

    async def aforward(self, question):
        return await self.predict.acall(question=question)


class StarArgs(dspy.Module):
    def __init__(self):
        self.predict = dspy.Predict("question -> answer")

    def forward(self, *args):
        return self.predict(question=args[0])


@pytest.mark.parametrize(("module", "says"), [
    pytest.param(AsyncOnly(), "only aforward", id="async_only"),
    pytest.param(StarArgs(), "only \\*args", id="star_args"),
])
def test_what_cannot_run_says_so(module, says, lm, pool):
    """An async-only module, or a ``forward(*args)``: a ConfigurationError, not a crash."""
    with pytest.raises(dspex_lab.errors.ConfigurationError, match=says):
        dspex_lab.predict(module, lm=lm, cache=False, question="Hi?")
    with pytest.raises(dspex_lab.errors.ConfigurationError, match=says):
        dspex_lab.run(module, pd.DataFrame({"question": ["Hi?"]}), lm=lm, pool=pool,
                      progress=False)


def test_progress_bars_are_safe_for_rows_in_threads():
    """The registry workers give tqdm: DSPy's executors in four threads at once, no race."""
    import threading

    from dspy.utils.parallelizer import ParallelExecutor

    from dspex_lab.runtime import _thread_safe_progress_bars

    _thread_safe_progress_bars()
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(200):
            try:
                ParallelExecutor(num_threads=1, disable_progress_bar=True).execute(
                    lambda x: x, [1, 2])
            except Exception as exc:  # collected, asserted below
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:1]


def test_two_step_adapter_set_in_the_notebook(lm, pool):
    """learn/programming/adapters: ``dspy.TwoStepAdapter(extraction_lm)`` (the embedded LM
    extracts too), configured in the notebook, reaches ``predict`` and ``run``."""
    import programs as P

    module = dspy.ChainOfThought("question -> answer: int")
    with dspy.context(lm=lm, adapter=dspy.TwoStepAdapter(lm)):
        expected = [module(**row) for row in P.MATH]
        single = dspex_lab.predict(module, lm=lm, cache=False, **P.MATH[0])
        frame = run_frame(module, P.MATH, lm, pool)
    assert_same(expected[0], single, "predict")
    assert_frame_matches(expected, frame, ["question"])
