"""A cached single call says so and from when/where: this session or an earlier one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import dspex_lab
from dspex_lab.cache import ResultCache, origin, set_cache
from dspex_lab.display import prediction_text

QUESTION = "What is the capital of Peru? (origin test)"


@pytest.fixture
def disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    set_cache(ResultCache(tmp_path / "results.sqlite"))
    yield tmp_path
    set_cache(None)


def _ask():
    return dspex_lab.predict("question -> answer", question=QUESTION, lm="embedded",
                             implementation="native")


def test_a_repeat_in_this_session_says_this_session(disk_cache):
    first = _ask()
    assert not first._dspex.cached and first._dspex.cache_origin is None
    again = _ask()
    assert again._dspex.cached
    assert again._dspex.cache_origin == "from this session, just now"
    assert "native (cached from this session, just now)" in prediction_text(again)


def test_an_answer_stored_by_another_kernel_says_an_earlier_session(disk_cache):
    script = textwrap.dedent(f"""
        import dspex_lab
        pred = dspex_lab.predict("question -> answer", question={QUESTION!r}, lm="embedded",
                                 implementation="native")
        assert not pred._dspex.cached
    """)
    env = dict(os.environ, DSPEX_CACHE_DIR=str(disk_cache), LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.pop("DSPEX_LM", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pred = _ask()
    assert pred._dspex.cached
    assert pred._dspex.cache_origin.startswith("from an earlier session, ")
    assert "cached from an earlier session" in prediction_text(pred)


def test_origin_words():
    assert origin(0.0, "x", now=90_000.0) == "from an earlier session, 1 d ago"
    assert origin(None, None) == "from the result cache (when: not recorded)"
