"""Running pipelines in the kernel: state, trace, parallel, when, map, errors, streaming,
telemetry. DSPy steps run inline (``implementation="native"``) on the embedded LM; the worker
pool path is covered in tests/integration/test_pipeline_pool.py."""

import threading
import time

import pytest

from dspex_lab import telemetry
from dspex_lab.errors import PipelineError
from dspex_lab.pipeline import Pipeline, dspy_step, map, native, parallel, when


def clean(question: str) -> str:
    return question.strip()


def double(x: int) -> int:
    return 2 * x


def boom(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


def test_native_pipeline_state_and_trace():
    p = Pipeline([native(double), native(lambda double: double + 1, output="y", name="inc")],
                 name="arith")
    r = p(x=4)
    assert dict(r) == {"x": 4, "double": 8, "y": 9} and r.y == 9
    assert r.outputs == {"double": 8, "y": 9}
    assert [(s.name, s.route, s.status) for s in r.trace] == [
        ("double", "native", "ok"), ("inc", "native", "ok")]
    assert all(s.latency_ms >= 0 for s in r.trace) and r.ok and r.errors == []
    assert r.step("inc").outputs == {"y": 9}
    assert list(r.to_frame()["step"]) == ["double", "inc"]


def test_missing_inputs_are_reported_before_running():
    ran = []
    p = Pipeline([native(lambda x: ran.append(x), outputs=[], name="record")])
    with pytest.raises(PipelineError, match="needs the input 'x'"):
        p(y=1)
    assert ran == []


def test_parallel_branches_run_concurrently_and_merge_in_order():
    barrier = threading.Barrier(2, timeout=10)

    def left(x):
        barrier.wait()  # only returns when the other branch is running too
        return x + 1

    def right(x):
        barrier.wait()
        return x + 2

    p = Pipeline([parallel(native(left, output="a"), native(right, output="b"), name="fan")])
    r = p(x=1)
    assert (r.a, r.b) == (2, 3)
    fan = r.step("fan")
    assert fan.outputs == {"a": 2, "b": 3} and fan.depth == 0
    assert {s.name for s in r.trace if s.depth == 1} == {"left", "right"}


def test_parallel_timeout_per_branch():
    release = threading.Event()

    def slow(x):
        release.wait(5)
        return x

    p = Pipeline([parallel(native(slow, output="a"), native(double), timeout=0.2, name="fan"),
                  native(lambda a: a, output="b", name="after")])
    try:
        r = p(x=3, continue_on_error=True)
        assert r.double == 6 and "a" not in r
        failed = {e.name: e for e in r.errors}
        assert "took longer than 0.2 s" in failed["slow"].error
        assert failed["after"].status == "skipped" and "step 'slow' failed" in failed["after"].error
        with pytest.raises(PipelineError, match="took longer") as err:
            p(x=3)
        assert err.value.step == "slow"
    finally:
        release.set()


def test_when_with_a_field_or_a_callable():
    p = Pipeline([native(double),
                  when(lambda s: s.double > 5, native(lambda double: "big", output="size",
                                                      name="big"),
                       native(lambda double: "small", output="size", name="small")),
                  when("flag", native(lambda x: x, output="echo", name="echo"), name="maybe")])
    big = p(x=4, flag=0)
    assert big.size == "big" and big.echo is None
    assert big.step("when").detail == "then" and big.step("maybe").detail == "no branch"
    small = p(x=1, flag=True)
    assert small.size == "small" and small.echo == 1
    assert [s.name for s in small.trace] == ["double", "when", "small", "maybe", "echo"]


def test_map_over_a_list_field():
    p = Pipeline([map("xs", native(double, inputs=["x"]), as_="x", name="each")])
    r = p(xs=[1, 2, 3])
    assert r.double == [2, 4, 6]
    each = r.step("each")
    assert each.detail == "3 items" and len(each.children) == 3
    assert [s.name for s in r.trace] == ["each"]  # items are children, not trace rows
    with pytest.raises(PipelineError, match="needs a list in 'xs'"):
        p(xs="abc")


def test_map_items_that_fail_are_none_with_continue_on_error():
    def inv(x):
        return 1 / x

    p = Pipeline([map("xs", native(inv), as_="x")])
    r = p(xs=[1, 0, 2], continue_on_error=True)
    assert r.inv == [1.0, None, 0.5]
    assert r.step("map").detail == "3 items, 1 failed"


def test_failure_stops_the_run_with_the_step_and_partial_result():
    p = Pipeline([native(double), native(boom, inputs=["x"], output="z"), native(clean)])
    with pytest.raises(PipelineError) as err:
        p(x=2, question=" q ")
    e = err.value
    assert e.step == "boom" and "cannot handle 2" in str(e)
    assert isinstance(e.__cause__, ValueError) and isinstance(e.errors[0], ValueError)
    assert [s.name for s in e.result.trace] == ["double", "boom"]
    assert e.result["double"] == 4


def test_continue_on_error_keeps_going_and_lists_errors():
    p = Pipeline([native(boom, inputs=["x"], output="z"),
                  native(lambda z: z, output="w", name="uses_z"), native(double)])
    r = p(x=5, continue_on_error=True)
    assert r.double == 10 and not r.ok
    assert [(e.name, e.status) for e in r.errors] == [("boom", "error"), ("uses_z", "skipped")]
    assert "ValueError: cannot handle 5" in r.errors[0].error
    assert "'z' (step 'boom' failed)" in r.errors[1].error
    assert Pipeline([native(boom, inputs=["x"], output="z")],
                    continue_on_error=True)(x=1).errors[0].name == "boom"


def test_on_step_callback_sees_every_step_and_cannot_break_the_run():
    seen = []
    p = Pipeline([native(double), native(lambda double: double, output="y", name="copy")])

    def callback(step):
        seen.append(step.name)
        raise RuntimeError("callback bug")

    assert p(x=1, on_step=callback).y == 2
    assert seen == ["double", "copy"]


def test_stream_yields_steps_in_order():
    def slowly(x):
        time.sleep(0.01)
        return x

    p = Pipeline([native(slowly, output="a"), native(double, inputs=["x"]),
                  native(lambda a: a, output="b", name="last")])
    stream = p.stream(x=2)
    names = [s.name for s in stream]
    assert names == ["slowly", "double", "last"]
    assert stream.result.b == 2
    failing = Pipeline([native(double), native(boom, inputs=["x"], output="z")]).stream(x=1)
    got = []
    with pytest.raises(PipelineError, match="cannot handle"):
        for s in failing:
            got.append(s.name)
    assert got == ["double", "boom"] and failing.result["double"] == 2


def test_closing_a_stream_cancels_the_steps_left():
    gate, ran = threading.Event(), []
    p = Pipeline([native(lambda x: gate.wait(5) and x, output="a", name="wait"),
                  native(lambda a: ran.append(a), outputs=[], name="after")])
    stream = p.stream(x=1)
    timer = threading.Timer(0.05, gate.set)
    timer.start()
    stream.close()
    timer.join()
    seen = []
    with pytest.raises(PipelineError, match="cancelled before step 'after'"):
        for s in stream:
            seen.append(s.name)
    assert seen == ["wait"] and ran == []


def test_telemetry_events_per_step_and_per_run():
    events = []
    unsubscribe = telemetry.subscribe(events.append)
    try:
        Pipeline([native(double)], name="tele")(x=1)
    finally:
        unsubscribe()
    kinds = [(e.kind, e.fields.get("step")) for e in events if e.kind.startswith("pipeline")]
    assert kinds == [("pipeline.step", "double"), ("pipeline.run", None)]
    step = next(e for e in events if e.kind == "pipeline.step").fields
    assert step["route"] == "native" and step["pipeline"] == "tele" and step["latency_ms"] >= 0


# -- DSPy steps, inline on the embedded LM ---------------------------------------------------------

def test_dspy_steps_inline(dspy_lm):
    p = Pipeline([native(clean, output="question"), dspy_step("question -> answer", module="cot"),
                  native(lambda answer: answer.lower(), output="low", name="lower")])
    r = p(question="  What is the capital of France? ", lm=dspy_lm, implementation="native",
          cache=False)
    assert r.answer == "Paris" and r.low == "paris"
    step = r.step("answer")
    assert step.route == "native" and step.prompt_tokens > 0 and step.cost > 0
    assert "reasoning" in step.outputs and "reasoning" not in r
    assert r.tokens == step.tokens


def test_dspy_map_and_fault_with_continue_on_error(dspy_lm):
    p = Pipeline([map("questions", dspy_step("question -> answer: int"), name="each"),
                  dspy_step("question -> answer2", name="single")])
    r = p(questions=["What is 2 + 3?", "What is 6 * 7?"], question="[[fail:500]] hi",
          lm=dspy_lm, implementation="native", cache=False, continue_on_error=True)
    assert r.answer == [5, 42]
    assert r.step("each").prompt_tokens > 0
    assert [e.name for e in r.errors] == ["single"] and "server had an error" in r.errors[0].error
