"""Moved to ``dspex_lab.lm.recording`` (recording and replay are about LM calls, below single
calls and batch runs alike); this name keeps working."""

from dspex_lab.lm.recording import *  # noqa: F403
from dspex_lab.lm.recording import (  # noqa: F401
    __all__,
    _Store,
    activated,
    current,
    entry_text,
    lookup,
    store,
    text_entry,
)
