"""Conformance (b), issue #12: DSPy's tutorial programs give through dspex_lab exactly what they
give in plain DSPy — the same values AND the same Python types, field by field, row by row.

Each program in ``programs.py`` runs twice on the same ``dspy.LM`` (the embedded server, no
cache on either side): row by row in plain DSPy under ``dspy.context(lm=..., adapter=...)``, and
through dspex_lab (``run`` over a DataFrame in a real worker pool, single ``predict`` calls,
``evaluate``, ``optimize``, a pipeline). ``programs`` is pickled by value, as code defined in a
notebook's ``__main__`` is; ``test_kernel.py`` runs a few of them from real notebook cells.

Every case passes: a difference found later is a bug to fix, never a marker to add.
"""

from __future__ import annotations

import cloudpickle
import dspy
import pandas as pd
import programs as P
import programs_future
import pytest
from compare import assert_same, differences, prediction_fields

import dspex_lab
from dspex_lab.batch.frame import RESULT_COLUMNS
from dspex_lab.pipeline import Pipeline, dspy_step
from dspex_lab.workers import WorkerPool

cloudpickle.register_pickle_by_value(P)
cloudpickle.register_pickle_by_value(programs_future)

META = RESULT_COLUMNS  # dspex_lab's bookkeeping columns (error, latency_ms, tokens, ...)
ADAPTERS = {None: None, "chat": dspy.ChatAdapter, "json": dspy.JSONAdapter,
            "xml": dspy.XMLAdapter}


def cases(names: list[str] | None = None) -> list:
    chosen = [P.BY_NAME[n] for n in names] if names else P.CASES
    return [pytest.param(c, id=c.name) for c in chosen]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    """One worker for the module (2 cores, other suites running too)."""
    with WorkerPool("conformance", size=1) as workers:
        assert workers.ready(timeout=120)
        yield workers


@pytest.fixture(scope="module", autouse=True)
def _optimizer_pool_stopped():
    """optimize() starts the optimizer pool; later modules get a fresh one."""
    yield
    from dspex_lab.workers import get_pool

    get_pool("optimizer").shutdown(wait=True)


@pytest.fixture
def lm(dspy_lm, lm_server):
    """The session's embedded LM, with the programs' responder (restored after the test)."""
    lm_server.configure(responder=P.responder)
    return dspy_lm


def adapter_for(case: P.Case) -> dspy.Adapter | None:
    cls = ADAPTERS[case.adapter]
    return cls() if cls else None


def plain(case: P.Case, lm: dspy.LM) -> list:
    """Plain DSPy: one module, called row by row, as a notebook loop does."""
    module = case.make()
    with dspy.context(lm=lm, adapter=adapter_for(case)):
        return [module(**row) for row in case.rows]


def output_columns(frame: pd.DataFrame, inputs: list[str]) -> list[str]:
    return [c for c in frame.columns if c not in META and c not in inputs]


def assert_frame_matches(expected: list, frame: pd.DataFrame, inputs: list[str]) -> None:
    """Every row's outputs equal plain DSPy's (values and types); no extra output column."""
    errors = frame["error"].dropna().tolist()
    assert not errors, f"rows failed in dspex_lab: {errors[:3]}"
    outputs = output_columns(frame, inputs)
    problems: list[str] = []
    for i, want in enumerate(expected):
        fields = prediction_fields(want)
        if "<value>" in fields:  # a non-Prediction return: one output column holds it
            if len(outputs) != 1:
                problems.append(f"row {i}: one output column expected for a "
                                f"{type(want).__name__} return, got {outputs}")
                continue
            fields = {outputs[0]: want}
        elif sorted(outputs) != sorted(fields):
            problems.append(f"row {i}: output columns {outputs} != DSPy's fields {list(fields)}")
        for name, value in fields.items():
            if name in frame.columns:
                problems += differences(value, frame[name].iloc[i], f"row {i}.{name}")
    assert not problems, "dspex_lab.run differs from plain DSPy:\n  " + "\n  ".join(problems)


def run_frame(program, rows: list[dict], lm: dspy.LM, pool, **kwargs) -> pd.DataFrame:
    return dspex_lab.run(program, pd.DataFrame(rows), lm=lm, pool=pool, cache=False,
                         progress=False, **kwargs)


# -- run() over a DataFrame ----------------------------------------------------------------------


@pytest.mark.parametrize("case", cases())
def test_run_matches_plain_dspy(case, lm, pool):
    expected = plain(case, lm)
    frame = run_frame(case.make(), case.rows, lm, pool, adapter=case.adapter)
    assert_frame_matches(expected, frame, list(case.rows[0]))


# -- single calls --------------------------------------------------------------------------------


def single_fields(got) -> dict:
    return prediction_fields(got)


@pytest.mark.parametrize("case", cases())
def test_predict_matches_plain_dspy(case, lm):
    """``dspex_lab.predict(module, **row)``: one call per row, in the general pool."""
    expected = plain(case, lm)
    module = case.make()
    problems: list[str] = []
    for i, (row, want) in enumerate(zip(case.rows, expected, strict=True)):
        got = dspex_lab.predict(module, lm=lm, cache=False, adapter=case.adapter, **row)
        fields = prediction_fields(want)
        got_fields = single_fields(got)
        if "<value>" in fields and len(got_fields) == 1:  # a non-Prediction return
            got_fields = {"<value>": next(iter(got_fields.values()))}
        problems += differences(fields, got_fields, f"row {i}")
    assert not problems, "dspex_lab.predict differs from plain DSPy:\n  " + "\n  ".join(problems)


SIGNATURE_CLASSES = [  # (case, the class, dspex_lab's module kind, DSPy's module)
    ("entity_extraction", P.PeopleExtraction, "cot", dspy.ChainOfThought),
    ("email_classify", P.ClassifyEmail, "cot", dspy.ChainOfThought),
    ("email_entities", P.ExtractEntities, "predict", dspy.Predict),
    ("emotion_literal", P.Emotion, "predict", dspy.Predict),
    ("citation_dict", P.CheckCitationFaithfulness, "cot", dspy.ChainOfThought),
    ("typed_qa_json", P.TypedQA, "predict", dspy.Predict),
    ("conversation_history", P.QA, "predict", dspy.Predict),
    ("image_input", P.DescribeImage, "predict", dspy.Predict),
]
def signature_params() -> list:
    return [pytest.param(*item, id=item[0]) for item in SIGNATURE_CLASSES]


@pytest.mark.parametrize(("name", "sig", "kind", "dspy_module"),
                         signature_params())
def test_signature_class_single_calls(name, sig, kind, dspy_module, lm):
    """``dspex_lab.predict(SignatureClass, ...)`` / ``chain_of_thought(...)`` run that class."""
    case = P.BY_NAME[name]
    with dspy.context(lm=lm, adapter=adapter_for(case)):
        expected = [dspy_module(sig)(**row) for row in case.rows]
    call = dspex_lab.chain_of_thought if kind == "cot" else dspex_lab.predict
    for i, (row, want) in enumerate(zip(case.rows, expected, strict=True)):
        got = call(sig, lm=lm, cache=False, adapter=case.adapter, **row)
        assert_same(dict(want.items()), dict(got.items()), f"row {i}")


@pytest.mark.parametrize(("name", "sig", "kind", "dspy_module"),
                         signature_params())
def test_signature_class_run(name, sig, kind, dspy_module, lm, pool):
    """``dspex_lab.run(SignatureClass, df, module=...)``."""
    case = P.BY_NAME[name]
    with dspy.context(lm=lm, adapter=adapter_for(case)):
        module = dspy_module(sig)
        expected = [module(**row) for row in case.rows]
    frame = run_frame(sig, case.rows, lm, pool, module=kind, adapter=case.adapter)
    assert_frame_matches(expected, frame, list(case.rows[0]))


TYPED_TEXT = "email_subject, email_body, sender -> email_type: EmailType, urgency: UrgencyLevel"


def test_string_signature_with_notebook_types(lm, pool):
    """``"... -> email_type: EmailType"`` where ``EmailType`` is a notebook variable."""
    EmailType, UrgencyLevel = P.EmailType, P.UrgencyLevel  # noqa: F841 - the caller's scope
    with dspy.context(lm=lm):
        module = dspy.Predict(TYPED_TEXT)
        expected = [module(**row) for row in P.EMAILS]
    for i, row in enumerate(P.EMAILS):
        got = dspex_lab.predict(TYPED_TEXT, lm=lm, cache=False, **row)
        assert_same(dict(expected[i].items()), dict(got.items()), f"predict row {i}")
    assert_frame_matches(expected, run_frame(TYPED_TEXT, P.EMAILS, lm, pool),
                         list(P.EMAILS[0]))


def test_react_single_calls_match_dspy_react(lm):
    """``dspex_lab.react(sig, tools=[...])`` with notebook-defined tools."""
    case = P.BY_NAME["react_agent"]
    expected = plain(case, lm)
    for i, (row, want) in enumerate(zip(case.rows, expected, strict=True)):
        got = dspex_lab.react("question -> answer: float", lm=lm, cache=False, max_iters=4,
                              tools=[P.evaluate_math, P.search_wikipedia], **row)
        assert_same(dict(want.items()), dict(got.items()), f"row {i}")


def test_run_react_signature_with_tools(lm, pool):
    case = P.BY_NAME["react_agent"]
    expected = plain(case, lm)
    frame = run_frame("question -> answer: float", case.rows, lm, pool, module="react",
                      tools=[P.evaluate_math, P.search_wikipedia], max_iters=4)
    assert_frame_matches(expected, frame, ["question"])


CACHED = ["email_processor", "typed_qa_json", "citation_dict", "conversation_history",
          "returns_list", "multihop"]


@pytest.mark.parametrize("case", cases(CACHED))
def test_rerun_from_the_result_cache_matches_plain_dspy(case, lm, lm_server, pool):
    """The default ``cache=True``: a re-run answered from the result cache gives the same
    values and types as the first run (and as plain DSPy)."""
    from dspex_lab.testing import fresh_run_state

    expected = plain(case, lm)
    with fresh_run_state(lm_server):
        kwargs = {"lm": lm, "pool": pool, "progress": False, "adapter": case.adapter}
        first = dspex_lab.run(case.make(), pd.DataFrame(case.rows), **kwargs)
        requests = lm_server.stats()["requests"]
        again = dspex_lab.run(case.make(), pd.DataFrame(case.rows), **kwargs)
        assert lm_server.stats()["requests"] == requests, "the re-run called the LM"
    assert again["cached"].all()
    assert_frame_matches(expected, first, list(case.rows[0]))
    assert_frame_matches(expected, again, list(case.rows[0]))


# -- settings made in the kernel reach the workers ------------------------------------------------


@pytest.mark.parametrize("adapter", [
    pytest.param(dspy.JSONAdapter, id="json"),
    pytest.param(P.ShoutingAdapter, id="notebook_adapter"),
])
def test_configured_adapter_reaches_workers(adapter, lm, pool):
    """``dspy.configure(adapter=...)`` in the notebook, then ``run`` and ``predict``."""
    case = P.BY_NAME["qa_confidence"]
    module = case.make()
    with dspy.context(lm=lm):
        default = [module(**row) for row in case.rows]
    with dspy.context(lm=lm, adapter=adapter()):
        expected = [module(**row) for row in case.rows]
        frame = run_frame(case.make(), case.rows, lm, pool)
        single = dspex_lab.predict(case.make(), lm=lm, cache=False, **case.rows[0])
    assert differences(default, expected), "the adapter must change the answers for this test"
    assert_same(dict(expected[0].items()), dict(single.items()), "predict")
    assert_frame_matches(expected, frame, list(case.rows[0]))


# -- evaluate vs dspy.Evaluate -------------------------------------------------------------------

DEVSET = [*P.ARITHMETIC[:4], {"question": "What is 2 + 2?", "answer": "5"}]  # one wrong label


def dspy_evaluate(program, devset: list[dict], metric, lm: dspy.LM, inputs=("question",)):
    examples = [dspy.Example(**row).with_inputs(*inputs) for row in devset]
    with dspy.context(lm=lm):
        return dspy.Evaluate(devset=examples, metric=metric, num_threads=1,
                             display_progress=False)(program)


def evaluated(result, field: str) -> tuple[list, list[float]]:
    """Each row's prediction of ``field`` and its score: from DSPy's ``(example, prediction,
    score)`` triples when the result has them, else from its table."""
    if hasattr(result, "results"):
        return ([getattr(pred, field) for _, pred, _ in result.results],
                [float(score) for _, _, score in result.results])
    return result.table[field].tolist(), result.table["score"].tolist()


def gold_metric(example: dspy.Example, pred: dspy.Prediction, trace=None) -> bool:
    """A DSPy metric reading a label that is not named like the output."""
    return example.gold == pred.answer


@pytest.mark.parametrize(("labels", "make"), [
    pytest.param("answer", P.MultiChain, id="module_label_named_like_output"),
    pytest.param("answer", lambda: dspy.Predict("question -> answer"),
                 id="predict_label_named_like_output"),
    pytest.param("gold", P.MultiChain, id="module_label_under_its_own_name"),
])
def test_evaluate_rows_match_dspy_evaluate(labels, make, lm, pool):
    devset = [{"question": r["question"], labels: r["answer"]} for r in DEVSET]
    metric = P.answer_exact_match if labels == "answer" else gold_metric
    expected = dspy_evaluate(make(), devset, metric, lm)
    result = dspex_lab.evaluate(make(), pd.DataFrame(devset), metric=metric, lm=lm, pool=pool,
                                cache=False, progress=False)
    answers, scores = evaluated(result, "answer")
    assert scores == [float(score) for _, _, score in expected.results]
    assert result.table["score"].tolist() == scores
    assert answers == [pred.answer for _, pred, _ in expected.results]


def test_evaluate_score_is_dspys(lm, pool):
    devset = [{"question": r["question"], "gold": r["answer"]} for r in DEVSET]
    expected = dspy_evaluate(dspy.Predict("question -> answer"), devset, gold_metric, lm)
    result = dspex_lab.evaluate(dspy.Predict("question -> answer"), pd.DataFrame(devset),
                                metric=gold_metric, lm=lm, pool=pool, cache=False, progress=False)
    assert expected.score == 80.0
    assert result.score == expected.score


def test_evaluate_multi_step_program_with_a_tool(lm, pool):
    """RAG (a notebook search function + ChainOfThought), metric on ``pred.response``."""
    devset = [{"question": q["question"], "gold": g} for q, g in
              zip(P.QUESTIONS[:3], ["Paris", "5", "41"], strict=True)]

    def metric(example, pred, trace=None):
        return example.gold == pred.response

    expected = dspy_evaluate(P.RAG(), devset, metric, lm)
    result = dspex_lab.evaluate(P.RAG(), pd.DataFrame(devset), metric=metric, lm=lm, pool=pool,
                                cache=False, progress=False)
    responses, scores = evaluated(result, "response")
    assert scores == [float(s) for _, _, s in expected.results]
    assert responses == [p.response for _, p, _ in expected.results]


# -- optimize vs the same optimizer run directly -------------------------------------------------

TRAIN = [*P.ARITHMETIC, {"question": "What is the capital of Peru?", "answer": "Lima"}]
TEST_ROWS = [{"question": "What is 10 + 5?"}, {"question": "What is 3 + 3?"},
             {"question": "What is the capital of France?"}]


def trainset() -> list[dspy.Example]:
    return [dspy.Example(**row).with_inputs("question") for row in TRAIN]


def direct_compile(make_optimizer, lm: dspy.LM, **compile_kwargs):
    with dspy.context(lm=lm):
        return make_optimizer().compile(dspy.Predict("question -> answer"), trainset=trainset(),
                                        **compile_kwargs)


def assert_compiled_same(direct, compiled, lm: dspy.LM, pool) -> None:
    assert_same(direct.dump_state(), compiled.state, "dump_state")
    with dspy.context(lm=lm):
        expected = [direct(**row) for row in TEST_ROWS]
    frame = run_frame(compiled, TEST_ROWS, lm, pool)
    assert_frame_matches(expected, frame, ["question"])


def bootstrap() -> dspy.BootstrapFewShot:
    return dspy.BootstrapFewShot(metric=P.answer_exact_match, max_bootstrapped_demos=2,
                                 max_labeled_demos=1)


def test_optimize_bootstrap_few_shot_by_name(lm, pool):
    direct = direct_compile(bootstrap, lm)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN,
                                  P.answer_exact_match, "BootstrapFewShot", lm=lm,
                                  progress=False, max_bootstrapped_demos=2, max_labeled_demos=1)
    assert compiled.demos == 2
    assert_compiled_same(direct, compiled, lm, pool)


def test_optimize_bootstrap_few_shot_instance(lm, pool):
    direct = direct_compile(bootstrap, lm)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN, None, bootstrap(),
                                  lm=lm, progress=False)
    assert_compiled_same(direct, compiled, lm, pool)


MIPRO = {"auto": None, "num_candidates": 2, "max_bootstrapped_demos": 1,
         "max_labeled_demos": 1, "seed": 9, "num_threads": 1, "verbose": False}
MIPRO_COMPILE = {"num_trials": 2, "minibatch": False, "requires_permission_to_run": False}


def test_optimize_miprov2_by_name(lm, pool):
    direct = direct_compile(lambda: dspy.MIPROv2(metric=P.answer_exact_match, **MIPRO), lm,
                            **MIPRO_COMPILE)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN,
                                  P.answer_exact_match, "MIPROv2", lm=lm, progress=False,
                                  **MIPRO, **MIPRO_COMPILE)
    assert_compiled_same(direct, compiled, lm, pool)


def gepa(lm: dspy.LM) -> dspy.GEPA:
    return dspy.GEPA(metric=P.answer_with_feedback, reflection_lm=lm, max_metric_calls=12,
                     num_threads=1, seed=0)


def simba() -> dspy.SIMBA:
    return dspy.SIMBA(metric=P.simba_metric, bsize=2, num_candidates=2, max_steps=1,
                      max_demos=1, num_threads=1)


def test_optimize_gepa_instance(lm, pool):
    direct = direct_compile(lambda: gepa(lm), lm)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN, None, gepa(lm),
                                  lm=lm, progress=False)
    assert_compiled_same(direct, compiled, lm, pool)


def test_optimize_gepa_by_name(lm, pool):
    direct = direct_compile(lambda: gepa(lm), lm)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN,
                                  P.answer_with_feedback, "GEPA", lm=lm, progress=False,
                                  reflection_lm=lm, max_metric_calls=12, num_threads=1, seed=0)
    assert_compiled_same(direct, compiled, lm, pool)


def test_optimize_simba_instance(lm, pool):
    direct = direct_compile(simba, lm)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN, None, simba(),
                                  lm=lm, progress=False)
    assert_compiled_same(direct, compiled, lm, pool)


def test_optimize_simba_by_name(lm, pool):
    direct = direct_compile(simba, lm)
    compiled = dspex_lab.optimize(dspy.Predict("question -> answer"), TRAIN, P.simba_metric,
                                  "SIMBA", lm=lm, progress=False, bsize=2, num_candidates=2,
                                  max_steps=1, max_demos=1, num_threads=1)
    assert_compiled_same(direct, compiled, lm, pool)


# -- a pipeline wrapping a DSPy module -----------------------------------------------------------

@pytest.mark.parametrize(("name", "outputs"), [
    pytest.param("multihop", ["notes", "titles"], id="multihop"),
    pytest.param("email_processor", ["email_type", "urgency", "key_entities", "priority_score"],
                 id="email_processor"),
])
def test_pipeline_dspy_step_matches_plain_dspy(name, outputs, lm, pool):
    case = P.BY_NAME[name]
    expected = plain(case, lm)
    inputs = list(case.rows[0])
    pipe = Pipeline([dspy_step(case.make(), inputs=inputs, outputs=outputs, lm=lm)])
    problems: list[str] = []
    for i, (row, want) in enumerate(zip(case.rows, expected, strict=True)):
        result = pipe(**row)
        for field in outputs:
            problems += differences(getattr(want, field), result[field], f"row {i}.{field}")
    frame = run_frame(pipe, case.rows, lm, pool)
    for i, want in enumerate(expected):
        for field in outputs:
            problems += differences(getattr(want, field), frame[field].iloc[i],
                                    f"run row {i}.{field}")
    assert not problems, "the pipeline differs from plain DSPy:\n  " + "\n  ".join(problems)
