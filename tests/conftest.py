"""Shared test setup: never reach the network, never write to the user's caches."""

import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspex-test-dspy-cache-"))
os.environ.setdefault("DSPEX_CACHE_DIR", tempfile.mkdtemp(prefix="dspex-test-cache-"))
for _key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
    os.environ.pop(_key, None)


# -- the embedded LM server (dspex_lab.testing) -------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lm_server():
    """One embedded LM server (thread mode) for the whole session; reset per use if needed."""
    from dspex_lab.testing import running_server

    with running_server() as server:
        yield server


@pytest.fixture
def dspy_lm(lm_server):
    """A fresh ``dspy.LM`` for the session server (no cache, no retries); server stats reset."""
    from dspex_lab.testing import make_lm

    lm_server.reset()
    lm_server.configure(latency_ms=0.0, jitter_ms=0.0, error_rate=0.0, seed=0, responder=None,
                        rules=None)
    return make_lm(lm_server)
