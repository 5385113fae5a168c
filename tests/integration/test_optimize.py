"""optimize end to end: BootstrapFewShot in the optimizer pool, save -> load -> run."""

import importlib.util
import json
import os
import signal
import threading
import time

import pandas as pd
import pytest

from dspex_lab import batch
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
    assert compiled.score == 1.0 and compiled.metadata["score_source"] == "valset"
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


def test_unknown_optimizer_and_bad_trainsets_fail_in_the_kernel(lm_server):
    lm_server.reset()
    with pytest.raises(ConfigurationError, match="Unknown optimizer 'Magic'") as info:
        optimize("question -> answer", TRAIN, "exact_match", "Magic")
    assert all(name in str(info.value) for name in OPTIMIZERS)
    with pytest.raises(ConfigurationError, match=r"Row 0 of the trainset has no 'question'"):
        optimize("question -> answer", TRAIN.rename(columns={"question": "q"}), "exact_match")
    with pytest.raises(ConfigurationError, match="no label column"):
        optimize("question -> answer", TRAIN[["question"]], "exact_match")
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
