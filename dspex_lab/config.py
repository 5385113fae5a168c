"""Notebook defaults: one traitlets ``Configurable`` named ``Dspex``.

``%load_ext dspex_lab`` registers it in ``shell.configurables``, so ``%config`` works, and so
does ``c.Dspex.lm = ...`` in ``ipython_config.py``::

    %config Dspex.lm = "openai/gpt-4o-mini"      # the magics' default LM (empty: dspex_lab's)
    %config Dspex.module = "cot"                 # predict | cot | react
    %config Dspex.concurrency = 8                # LM calls in flight for --df runs
    %config Dspex.cache = False                  # skip the result cache
    %config Dspex.aliases = {"fast": "openai/gpt-4o-mini", "local": "ollama_chat/llama3"}
    %config Dspex.warm_pool = False              # do not start the workers at %load_ext

Outside IPython the same object is ``get_config()``:

    >>> from dspex_lab.config import get_config
    >>> cfg = get_config()
    >>> cfg.module
    'predict'
    >>> cfg.aliases = {"fast": "openai/gpt-4o-mini"}
    >>> cfg.resolve_lm("fast"), cfg.resolve_lm("embedded")
    ('openai/gpt-4o-mini', 'embedded')
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Enum, Int, TraitError, Unicode, observe, validate
from traitlets.config import SingletonConfigurable

from dspex_lab.errors import ConfigurationError
from dspex_lab.kinds import ADAPTERS, MAGIC_MODULES

__all__ = ["MODULES", "Dspex", "get_config"]

MODULES = MAGIC_MODULES
"""The module kinds ``%%dspex --module`` and ``Dspex.module`` accept (``kinds.MAGIC_MODULES``)."""

_MAX_ALIAS_DEPTH = 16


class Dspex(SingletonConfigurable):
    """Defaults of the ``%%dspex`` magics (``%config Dspex`` lists them with their help)."""

    lm = Unicode("", help="The LM the magics use when --lm is not given: a model string "
                 "('openai/gpt-4o-mini'), a short alias ('gpt-4o-mini', 'embedded'), a name "
                 "from Dspex.aliases or from dspex_lab.configure(lms=...). Empty: "
                 "dspex_lab's default LM.").tag(config=True)
    module = Enum(MODULES, default_value="predict",
                  help="The DSPy module when --module is not given.").tag(config=True)
    adapter = Enum(tuple(ADAPTERS), default_value=None, allow_none=True,
                   help="The DSPy adapter when --adapter is not given (None: DSPy's)."
                   ).tag(config=True)
    concurrency = Int(None, allow_none=True,
                      help="LM calls in flight for --df runs (None: dspex_lab picks)."
                      ).tag(config=True)
    cache = Bool(True, help="Answer repeated calls from the result cache.").tag(config=True)
    progress = Bool(True, help="Show a progress bar during --df runs.").tag(config=True)
    aliases = Dict(value_trait=Unicode(), key_trait=Unicode(),
                   help="Model aliases: {'fast': 'openai/gpt-4o-mini'}; --lm and Dspex.lm "
                   "accept the alias names.").tag(config=True)

    warm_pool = Bool(True, help="Start the worker pool and import DSPy in the background at "
                     "%load_ext, so the first answer is quick (c.Dspex.warm_pool = False in "
                     "ipython_config.py, or DSPEX_WARM_POOL=0, to skip; False after loading "
                     "shuts an unused warmed pool down).").tag(config=True)

    @observe("warm_pool")
    def _warm_pool_changed(self, change: Any) -> None:
        from dspex_lab import warmup

        if change["new"]:
            warmup.start()
        else:
            warmup.release()

    @validate("concurrency")
    def _check_concurrency(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 1:
            raise TraitError(f"Dspex.concurrency must be a positive number or None, not "
                             f"{value!r}; e.g. %config Dspex.concurrency = 8")
        return value

    def resolve_lm(self, name: str | None = None) -> str | None:
        """The LM to use for ``name`` (the ``--lm`` value; None: ``Dspex.lm``), with aliases
        followed; None means dspex_lab's default LM.

        >>> Dspex(aliases={"fast": "openai/gpt-4o-mini"}).resolve_lm("fast")
        'openai/gpt-4o-mini'
        """
        value = (name if name is not None else self.lm or "").strip()
        seen: list[str] = []
        while value in self.aliases:
            if value in seen or len(seen) > _MAX_ALIAS_DEPTH:
                chain = " -> ".join([*seen, value])
                raise ConfigurationError(
                    f"The model aliases loop ({chain}); fix Dspex.aliases so that every alias "
                    "ends at a model string such as 'openai/gpt-4o-mini'.")
            seen.append(value)
            value = self.aliases[value].strip()
        return value or None


def get_config() -> Dspex:
    """The ``Dspex`` settings object (the one ``%config Dspex...`` changes)."""
    return Dspex.instance()
