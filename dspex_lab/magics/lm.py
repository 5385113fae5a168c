"""``%dspex_lm [MODEL]``: show the LM the magics use, or set it (``Dspex.lm``).

    %dspex_lm                          # which model, from where, with which settings, and
                                       # the named LMs of dspex_lab.configure(lms=...)
    %dspex_lm openai/gpt-4o-mini       # same as %config Dspex.lm = "openai/gpt-4o-mini"
    %dspex_lm fast                     # an alias from Dspex.aliases, or a configured name
    %dspex_lm --latency 200 --jitter 50 --error-rate 0.1 --error-kinds 429,500 --seed 1
                                       # the embedded LM's knobs (configure(embedded=...))

    >>> lm_info(None).as_dict()["model"]
    'openai/dspex-embedded'
"""

from __future__ import annotations

from typing import Any

from dspex_lab.config import Dspex, get_config
from dspex_lab.display import Facts

__all__ = ["lm_info"]

_HIDDEN_FOR_EMBEDDED = {"api_base", "base_url", "api_key"}
_SHOWN_KNOBS = ("latency_ms", "jitter_ms", "error_rate", "error_kinds", "seed")


def lm_info(model: str | None, config: Dspex | None = None,
            embedded: dict[str, Any] | None = None) -> Facts:
    """Set ``Dspex.lm`` to ``model`` (checked first) when given, and the embedded LM's knobs
    (``configure_embedded``) when given; return what the magics use."""
    from dspex_lab.lm import named_lms, resolve
    from dspex_lab.lm.config import configure_embedded, embedded_knobs

    cfg = config or get_config()
    if embedded:
        configure_embedded(embedded)
    if model:
        resolve(cfg.resolve_lm(model))      # raises ConfigurationError for an unknown model
        cfg.lm = model.strip()
    spec = resolve(cfg.resolve_lm())
    hidden = _HIDDEN_FOR_EMBEDDED if spec.embedded else set()
    settings = {k: v for k, v in spec.redacted().items() if k not in hidden}
    source = f"Dspex.lm = {cfg.lm!r}" if cfg.lm else "dspex_lab's default LM"
    rows: list[tuple[str, Any]] = [("model", spec.model), ("source", source)]
    if spec.embedded:
        rows.append(("note", "the embedded offline LM (deterministic fake answers, no key)"))
    if spec.embedded or embedded:
        knobs = embedded_knobs()
        rows.append(("embedded LM knobs", {k: knobs[k] for k in _SHOWN_KNOBS}))
    if settings:
        rows.append(("settings", settings))
    named = named_lms()
    if named:
        rows.append(("named LMs", named))
    if cfg.aliases:
        rows.append(("aliases", dict(cfg.aliases)))
    return Facts("LM used by %%dspex", rows, kind="lm")
