"""The embedded OpenAI-compatible LM server: deterministic answers to DSPy prompts, offline.

    >>> from dspex_lab.lm_server import LMServer
    >>> server = LMServer(latency_ms=20).start()          # or start(mode="process")
    >>> lm = dspy.LM("openai/dspex-embedded", api_base=server.url, api_key="x")
    >>> server.stats()["requests"], server.stop()

It understands DSPy's ChatAdapter, JSONAdapter and XMLAdapter prompts and answers every output
field with a well-formed value of its type (arithmetic and a few facts are even right), runs
ReAct tools, streams, and injects latency and faults on demand (``error_rate``, or markers
such as ``[[fail:once:500]]`` in the prompt). Run it alone with
``python -m dspex_lab.lm_server --port 0``.

This package never imports DSPy (the server process starts fast).
"""

from dspex_lab.lm_server.answers import Rule, load_rules
from dspex_lab.lm_server.app import DEFAULT_MODEL, LMApp, estimate_tokens
from dspex_lab.lm_server.options import ERROR_KINDS, ServerOptions
from dspex_lab.lm_server.prompts import OutputField, ParsedPrompt, Tool, parse_request
from dspex_lab.lm_server.server import LMServer

__all__ = [
    "DEFAULT_MODEL",
    "ERROR_KINDS",
    "LMApp",
    "LMServer",
    "OutputField",
    "ParsedPrompt",
    "Rule",
    "ServerOptions",
    "Tool",
    "estimate_tokens",
    "load_rules",
    "parse_request",
]
