"""optimize end to end in the optimizer pool: save -> load -> run, labels named as the user
likes, and every optimizer by name giving what plain DSPy gives in this process (same seed,
same embedded LM): the same ``dump_state()`` and the same predictions."""

import importlib.util
import json
import os
import signal
import threading
import time

import dspy
import numpy as np
import pandas as pd
import pytest

import dspex_lab
from dspex_lab import batch, evaluate
from dspex_lab.errors import ConfigurationError
from dspex_lab.optimize import OPTIMIZERS, optimize
from dspex_lab.persistence import CompiledProgram, load
from dspex_lab.workers import get_pool

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (9, 1), (4, 4), (6, 3)]
TRAIN = pd.DataFrame([{"question": f"What is {a} + {b}?", "answer": str(a + b)}
                      for a, b in PAIRS])
TEST = pd.DataFrame({"question": ["What is 10 + 5?", "What is 3 + 3?", "What is 20 + 22?"]})


@pytest.fixture(scope="module", autouse=True)
def _stop_optimizer_pool():
    yield
    get_pool("optimizer").shutdown(wait=True)


def test_bootstrap_few_shot_save_load_run(dspy_lm, lm_server, tmp_path):
    compiled = optimize("question -> answer", TRAIN, "exact_match", "BootstrapFewShot",
                        lm=dspy_lm, progress=False, valset=TRAIN[:4],
                        max_bootstrapped_demos=3, max_labeled_demos=0)
    assert isinstance(compiled, CompiledProgram)
    assert compiled.demos == 3 and compiled.optimizer == "BootstrapFewShot"
    assert compiled.score == 100.0 and compiled.metadata["score_source"] == "valset"
    assert compiled.metadata["trainset_size"] == 8 and compiled.metadata["metric_calls"] >= 3
    assert any("Bootstrapped 3 full traces" in line for line in compiled.metadata["log"])
    assert lm_server.stats()["requests"] >= 3 + 4          # bootstrap traces + valset

    path = compiled.save(tmp_path / "qa.json")
    saved = json.loads(path.read_text())
    assert saved["program"]["kind"] == "predict" and saved["demos"] == 3
    assert [d["question"] for d in saved["state"]["demos"]] == TRAIN["question"][:3].tolist()

    loaded = load(path)
    assert loaded.demos == 3 and loaded.state == compiled.state
    run = {"lm": dspy_lm, "progress": False, "cache": False, "pool": "optimizer"}
    before = batch.run(compiled, TEST, **run)
    after = batch.run(loaded, TEST, **run)
    plain = batch.run("question -> answer", TEST, **run)
    assert before["answer"].tolist() == after["answer"].tolist() == ["15", "6", "42"]
    assert before["prompt_tokens"].tolist() == after["prompt_tokens"].tolist()
    # the demos reach the LM: the compiled prompts are longer than the zero-shot ones
    assert (after["prompt_tokens"] > plain["prompt_tokens"]).all()
    assert loaded(question="What is 7 + 7?", lm=dspy_lm, implementation="native").answer == "14"


def test_notebook_metric_list_of_dicts_and_labeled_few_shot(dspy_lm):
    rows = TRAIN.rename(columns={"answer": "gold"}).to_dict("records")
    compiled = optimize("question -> answer", rows, lambda gold, pred: gold.answer == pred.answer,
                        "LabeledFewShot", lm=dspy_lm, progress=False, columns={"answer": "gold"},
                        k=2)
    assert compiled.demos == 2 and compiled.score is None
    assert compiled.metadata["metric"] == "<lambda>"


def test_optimizer_options_are_checked(dspy_lm):
    with pytest.raises(ConfigurationError, match=r"no option 'bogus'.*max_bootstrapped_demos"):
        optimize("question -> answer", TRAIN, "exact_match", lm=dspy_lm, progress=False, bogus=1)
    with pytest.raises(ConfigurationError, match=r"no option 'bogus'.*max_rounds"):
        optimize("question -> answer", TRAIN, "exact_match", "KNNFewShot", lm=dspy_lm,
                 progress=False, k=2, vectorizer=hashed_words, bogus=1)


def test_unknown_optimizer_and_bad_trainsets_fail_in_the_kernel(lm_server):
    lm_server.reset()
    with pytest.raises(ConfigurationError, match="Unknown optimizer 'Magic'") as info:
        optimize("question -> answer", TRAIN, "exact_match", "Magic")
    assert all(name in str(info.value) for name in OPTIMIZERS)
    with pytest.raises(ConfigurationError, match=r"Row 0 of the trainset has no 'question'"):
        optimize("question -> answer", TRAIN.rename(columns={"question": "q"}), "exact_match")
    with pytest.raises(ConfigurationError, match=r"GEPA needs reflection_lm=\.\.\."):
        optimize("question -> answer", TRAIN, "exact_match", "GEPA")
    with pytest.raises(ConfigurationError, match=r"KNNFewShot needs vectorizer=\.\.\."):
        optimize("question -> answer", TRAIN, "exact_match", "KNNFewShot", k=2)
    with pytest.raises(ConfigurationError, match="BootstrapFewShot needs a metric"):
        optimize("question -> answer", TRAIN)
    with pytest.raises(ConfigurationError, match="trainset is empty"):
        optimize("question -> answer", [], "exact_match")
    with pytest.raises(ConfigurationError, match="set them on the"):
        optimize("question -> answer", TRAIN, None, object.__new__(type("Opt", (), {
            "compile": lambda self, *a, **k: None})), max_rounds=2)
    if importlib.util.find_spec("optuna") is None:
        with pytest.raises(ConfigurationError, match=r"MIPROv2 needs the optional package"):
            optimize("question -> answer", TRAIN, "exact_match", "MIPROv2")
    assert lm_server.stats()["requests"] == 0


def test_ctrl_c_cancels_the_compile_and_the_pool_stays_usable(dspy_lm, lm_server, ctrl_c_raises):
    get_pool("optimizer").call(sum, [1, 2])                  # warm: time only the compile
    lm_server.configure(latency_ms=300.0)                    # 8 examples: about 2.5 s of calls
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            optimize("question -> answer", TRAIN, "exact_match", lm=dspy_lm, progress=False,
                     max_bootstrapped_demos=8, max_labeled_demos=0)
    finally:
        timer.cancel()
        lm_server.configure(latency_ms=0.0)
    assert time.monotonic() - start < 2.0                    # returned at once, not after 2.5 s
    time.sleep(0.5)
    settled = lm_server.stats()["requests"]
    time.sleep(1.0)
    assert lm_server.stats()["requests"] == settled < len(TRAIN)   # the worker stopped calling
    assert get_pool("optimizer").call(sum, [1, 2]) == 3


# -- the same program as plain DSPy -------------------------------------------------------------

# Two wrong labels, so that metrics fail on some rows and the optimizers have work to do.
LABELLED = pd.DataFrame([{"question": f"What is {a} + {b}?", "expected": str(a + b + (i in (1, 5)))}
                         for i, (a, b) in enumerate(PAIRS)])
ROWS = ["What is 10 + 5?", "What is 3 + 3?", "What is 20 + 22?"]


def expected_matches(example, pred, trace=None):
    return example.expected == pred.answer


def with_feedback(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = gold.expected == pred.answer
    return dspy.Prediction(score=float(ok), feedback="right" if ok else
                           f"Wrong: the expected answer is {gold.expected}.")


def hashed_words(texts):
    """An offline embedder for KNNFewShot: bag of hashed words."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.split():
            out[i, sum(word.encode()) % 64] += 1
    return out


def examples(df):
    return [dspy.Example(**r).with_inputs("question") for r in df.to_dict("records")]


def plain_dspy(name, lm, metric, init, compile_kw):
    """The optimizer run directly in this process, as a DSPy user would."""
    with dspy.context(lm=lm):
        cls = getattr(dspy, name)
        if name == "KNNFewShot":
            optimizer = cls(trainset=examples(LABELLED), metric=metric,
                            **{**init, "vectorizer": dspy.Embedder(init["vectorizer"])})
            return optimizer.compile(dspy.Predict("question -> answer"))
        optimizer = cls(**init) if name == "LabeledFewShot" else cls(metric=metric, **init)
        return optimizer.compile(dspy.Predict("question -> answer"), trainset=examples(LABELLED),
                                 **compile_kw)


CASES = {
    "BootstrapFewShot": (expected_matches, {"max_bootstrapped_demos": 2, "max_labeled_demos": 1},
                         {}),
    "BootstrapFewShotWithRandomSearch": (
        expected_matches, {"max_bootstrapped_demos": 2, "max_labeled_demos": 2,
                           "num_candidate_programs": 2, "num_threads": 1}, {"valset": 4}),
    "LabeledFewShot": (None, {"k": 3}, {"sample": False}),
    "COPRO": (expected_matches, {"breadth": 2, "depth": 1},
              {"eval_kwargs": {"num_threads": 1, "display_progress": False}}),
    "MIPROv2": (expected_matches, {"auto": None, "num_candidates": 2, "max_bootstrapped_demos": 1,
                                   "max_labeled_demos": 1, "num_threads": 1, "seed": 3},
                {"num_trials": 2, "minibatch": False, "valset": 4}),
    "SIMBA": (expected_matches, {"bsize": 4, "num_candidates": 2, "max_steps": 1, "max_demos": 1,
                                 "num_threads": 1}, {"seed": 3}),
    "GEPA": (with_feedback, {"max_metric_calls": 20, "num_threads": 1,
                             "reflection_minibatch_size": 2, "seed": 1}, {"valset": 4}),
    "KNNFewShot": (expected_matches, {"k": 2, "vectorizer": hashed_words,
                                      "max_bootstrapped_demos": 1}, {}),
}
LM_ARGS = {"COPRO": "prompt_model", "MIPROv2": "prompt_model", "SIMBA": "prompt_model",
           "GEPA": "reflection_lm"}


@pytest.mark.parametrize("name", list(CASES))
def test_every_optimizer_by_name_equals_plain_dspy(name, dspy_lm, lm_server):
    metric, init, compile_kw = CASES[name]
    init = {**init, **({LM_ARGS[name]: dspy_lm} if name in LM_ARGS else {})}
    valset = compile_kw.get("valset")
    ours_compile = {k: v for k, v in compile_kw.items() if k != "valset"}
    compiled = optimize("question -> answer", LABELLED, metric, name, lm=dspy_lm, progress=False,
                        valset=LABELLED[:valset] if valset else None, **init, **ours_compile)
    plain_compile = {**compile_kw, **({"valset": examples(LABELLED[:valset])} if valset else {})}
    reference = plain_dspy(name, dspy_lm, metric, init, plain_compile)

    state = reference.dump_state()
    if name == "KNNFewShot":  # its neighbours are its trainset, kept as the predictor's "train"
        assert compiled.state["train"] == LABELLED.to_dict("records")
        state["train"] = compiled.state["train"]
    assert compiled.optimizer == name and compiled.state == state
    with dspy.context(lm=dspy_lm):
        expected = [reference(question=q).answer for q in ROWS]
    ours = [compiled(question=q, lm=dspy_lm, implementation="native", cache=False).answer
            for q in ROWS]
    assert ours == expected == ["15", "6", "42"]
    if name in ("BootstrapFewShot", "LabeledFewShot"):
        assert compiled.demos > 0                       # real demos were compared
    if name == "KNNFewShot":                            # the neighbours reach the prompt
        lm_server.reset()
        compiled(question=ROWS[0], lm=dspy_lm, implementation="native", cache=False)
        with_neighbours = lm_server.stats()["prompt_tokens"]
        lm_server.reset()
        with dspy.context(lm=dspy_lm):
            dspy.Predict("question -> answer")(question=ROWS[0])
        assert with_neighbours > lm_server.stats()["prompt_tokens"]


def test_labels_named_as_the_user_likes_then_evaluate(dspy_lm):
    """Issue #12 item 8: the trainset's label is ``expected``; the metric decides."""
    compiled = optimize("question -> answer", LABELLED, expected_matches, "BootstrapFewShot",
                        lm=dspy_lm, progress=False, max_bootstrapped_demos=3, max_labeled_demos=0)
    reference = plain_dspy("BootstrapFewShot", dspy_lm, expected_matches,
                           {"max_bootstrapped_demos": 3, "max_labeled_demos": 0}, {})
    assert compiled.demos == 3 and compiled.state == reference.dump_state()
    demos = [d["question"] for d in compiled.state["demos"]]
    assert demos == LABELLED["question"][[0, 2, 3]].tolist()      # row 1: a wrong label
    res = evaluate(compiled, LABELLED, expected_matches, lm=dspy_lm, progress=False)
    with dspy.context(lm=dspy_lm):
        ref = dspy.Evaluate(devset=examples(LABELLED), metric=expected_matches)(reference)
    assert res.score == ref.score == 75.0


def test_gepa_reflection_lm_by_configured_name(lm_server, dspy_lm):
    dspex_lab.configure(lms={"reflect": {"model": "openai/dspex-embedded",
                                         "api_base": lm_server.url, "api_key": "x",
                                         "cache": False, "num_retries": 0}})
    try:
        by_name = optimize("question -> answer", LABELLED, with_feedback, "GEPA", lm=dspy_lm,
                           progress=False, reflection_lm="reflect", max_metric_calls=12,
                           num_threads=1, reflection_minibatch_size=2)
    finally:
        dspex_lab.configure(lms={"reflect": None})
    reference = plain_dspy("GEPA", dspy_lm, with_feedback,
                           {"reflection_lm": dspy_lm, "max_metric_calls": 12, "num_threads": 1,
                            "reflection_minibatch_size": 2}, {})
    assert by_name.state == reference.dump_state()
    assert by_name.metadata["optimizer_kwargs"]["max_metric_calls"] == 12


def test_an_optimizer_instance_with_a_lock_travels_and_equals_plain_dspy(dspy_lm):
    def make():
        return dspy.BootstrapFewShot(metric=expected_matches, max_bootstrapped_demos=2,
                                     max_labeled_demos=0)

    mine = make()
    compiled = optimize("question -> answer", LABELLED, None, mine, lm=dspy_lm, progress=False)
    reference = plain_dspy("BootstrapFewShot", dspy_lm, expected_matches,
                           {"max_bootstrapped_demos": 2, "max_labeled_demos": 0}, {})
    assert compiled.demos == 2 and compiled.state == reference.dump_state()
    assert isinstance(mine.error_lock, type(threading.Lock()))   # the caller's instance as it was


def test_the_kernels_adapter_reaches_the_compile_as_in_plain_dspy(dspy_lm, lm_server):
    """``dspy.configure(adapter=dspy.JSONAdapter())`` in the kernel: the optimizer's calls
    (bootstrap traces, validation) send the same JSON prompts plain DSPy sends."""
    kw = {"max_bootstrapped_demos": 2, "max_labeled_demos": 0}

    def ours():
        lm_server.reset()
        compiled = optimize("question -> answer", LABELLED, expected_matches,
                            "BootstrapFewShot", lm=dspy_lm, progress=False,
                            valset=LABELLED[:2], **kw)
        return compiled, lm_server.stats()

    def plain():
        lm_server.reset()
        reference = plain_dspy("BootstrapFewShot", dspy_lm, expected_matches, kw, {})
        with dspy.context(lm=dspy_lm):
            dspy.Evaluate(devset=examples(LABELLED[:2]), metric=expected_matches,
                          display_progress=False)(reference)
        return reference, lm_server.stats()

    _, chat_stats = ours()
    dspy.configure(adapter=dspy.JSONAdapter())
    try:
        json_compiled, json_stats = ours()
        reference, plain_stats = plain()
    finally:
        dspy.configure(adapter=None)
    assert json_compiled.state == reference.dump_state()
    assert json_stats["requests"] == plain_stats["requests"]
    assert json_stats["prompt_tokens"] == plain_stats["prompt_tokens"]
    assert json_stats["prompt_tokens"] != chat_stats["prompt_tokens"]  # the adapter mattered
