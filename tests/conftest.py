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

_LM_SERVERS: list = []


@pytest.fixture(scope="session")
def lm_server():
    """One embedded LM server (thread mode) for the whole session. When a test changes its
    options (latency, errors, responder...), they are restored after it (stats zeroed too)."""
    from dspex_lab.testing import running_server

    with running_server() as server:
        _LM_SERVERS.append(server)
        yield server
        _LM_SERVERS.remove(server)


@pytest.fixture(autouse=True)
def _lm_server_options_restored():
    yield
    for server in _LM_SERVERS:
        if server.options != server.initial_options:
            server.reset(options=True)


@pytest.fixture
def dspy_lm(lm_server):
    """A fresh ``dspy.LM`` for the session server (no cache, no retries); server stats reset."""
    from dspex_lab.testing import make_lm

    lm_server.reset(options=True)
    return make_lm(lm_server)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt in this process, as in a kernel, even when the test run
    was started with SIGINT ignored (a background job of a non-interactive shell)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
