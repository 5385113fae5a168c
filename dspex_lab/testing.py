"""Test doubles that ship with dspex_lab: the embedded LM server as a context manager.

    >>> from dspex_lab.testing import embedded_lm
    >>> with embedded_lm(latency_ms=5) as (server, lm):
    ...     with dspy.context(lm=lm):
    ...         dspy.Predict("question -> answer")(question="What is 2 + 3?").answer
    '5'

In pytest::

    @pytest.fixture
    def lm():
        with embedded_lm() as (_, lm):
            yield lm

Everything goes through real HTTP (litellm or DSPy's native engine -> loopback server), so
retries, timeouts, streaming and usage accounting behave as with a hosted model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dspex_lab.lm_server import DEFAULT_MODEL, LMServer

__all__ = ["embedded_lm", "fresh_run_state", "make_lm", "make_spec", "running_server"]


@contextmanager
def running_server(mode: str = "thread", **server_options: Any) -> Iterator[LMServer]:
    """An ``LMServer`` started for the duration of the block, stopped afterwards."""
    server = LMServer(**server_options).start(mode=mode)
    try:
        yield server
    finally:
        server.stop()


def make_lm(server: LMServer, model: str = DEFAULT_MODEL, **lm_kwargs: Any) -> Any:
    """A ``dspy.LM`` for ``server``: no DSPy cache and no retries unless asked (tests want to
    see every request and every injected error)."""
    lm_kwargs.setdefault("cache", False)
    lm_kwargs.setdefault("num_retries", 0)
    return server.lm(model, **lm_kwargs)


@contextmanager
def embedded_lm(*, model: str = DEFAULT_MODEL, lm_kwargs: dict[str, Any] | None = None,
                mode: str = "thread", **server_options: Any) -> Iterator[tuple[LMServer, Any]]:
    """Start an embedded LM server and yield ``(server, dspy.LM)`` configured for it.

    ``server_options`` are ``LMServer`` options (latency_ms, error_rate, responder, rules,
    ...); ``lm_kwargs`` go to ``dspy.LM`` (defaults: ``cache=False``, ``num_retries=0``).
    """
    with running_server(mode=mode, **server_options) as server:
        yield server, make_lm(server, model, **(lm_kwargs or {}))


def make_spec(server: LMServer, model: str = DEFAULT_MODEL) -> Any:
    """An ``LMSpec`` (what workers build their LM from) pointing at ``server``."""
    from dspex_lab.lm import LMSpec

    return LMSpec(model, {"api_base": server.url, "api_key": "x"})


@contextmanager
def fresh_run_state(server: LMServer) -> Iterator[LMServer]:
    """A memory-only result cache and a server with zeroed stats, no latency and no errors,
    for the block; the default cache comes back afterwards."""
    from dspex_lab.cache import ResultCache, set_cache

    set_cache(ResultCache(path=None))
    server.reset()
    server.configure(latency_ms=0.0, error_rate=0.0)
    try:
        yield server
    finally:
        set_cache(None)
