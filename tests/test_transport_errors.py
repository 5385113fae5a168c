"""The fast transport words a failed reply as the default (``dspy.LM``) transport does.

Both transports run the same rows against the embedded server, whose fault markers send
malformed replies (see ``dspex_lab.lm_server.options``): the ``error`` and ``error_type``
columns must be the same, so that triage and retries do not depend on the transport.
"""

from __future__ import annotations

import concurrent.futures as cf

import pandas as pd
import pytest

import dspex_lab.batch as batch
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_spec, running_server

NO_RETRY = batch.RetryPolicy(max_retries=0)


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def pool():
    with cf.ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(server):
        yield


def failed_row(server, pool, transport: str, kind: str) -> tuple[str, str]:
    """``(error_type, error)`` of one row whose reply is the fault ``kind``."""
    server.reset()              # re-arm the markers for this transport
    frame = pd.DataFrame({"question": [f"What is 2 + 3? [[fail:{kind}]]"]})
    result = batch.run("question -> answer", frame, lm=make_spec(server, EMBEDDED_MODEL),
                       pool=pool, transport=transport, retry=NO_RETRY, progress=False)
    assert "fast_transport" not in result.attrs["usage"]   # the fast path was not left
    return result["error_type"][0], result["error"][0]


@pytest.mark.parametrize("kind, error_type, text", [
    ("badjson", "LMProviderError", "is not JSON: Expecting"),
    ("badutf8", "LMProviderError", "is not JSON: 'utf-8' codec can't decode"),
    ("truncated", "LMTransportError", "connection closed with 140 body bytes outstanding"),
    ("html", "LMServerError", "<h1>500 Internal Server Error</h1>"),
    ("500", "LMServerError", "(internal_error)"),
    ("drop", "LMTransportError", "server closed connection before sending response"),
])
def test_both_transports_report_a_bad_reply_the_same_way(server, pool, kind, error_type, text):
    default = failed_row(server, pool, "dspy", kind)
    fast = failed_row(server, pool, "fast", kind)
    assert fast == default
    assert default[0] == error_type and text in default[1]
    assert default[1].startswith(f"{error_type}: [{EMBEDDED_MODEL}] ")
