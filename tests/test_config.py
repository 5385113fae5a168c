"""``Dspex``: the traitlets settings behind ``%config Dspex...``."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from dspex_lab.config import Dspex, get_config
from dspex_lab.errors import ConfigurationError


def test_defaults_and_validation():
    cfg = Dspex()
    assert (cfg.lm, cfg.module, cfg.adapter, cfg.concurrency, cfg.cache, cfg.aliases) == \
        ("", "predict", None, None, True, {})
    with pytest.raises(TraitError, match="expected any of"):
        cfg.module = "tree"
    with pytest.raises(TraitError, match="positive number"):
        cfg.concurrency = 0
    with pytest.raises(TraitError):
        cfg.aliases = {"fast": 3}


def test_resolve_lm_follows_aliases():
    cfg = Dspex(aliases={"fast": "small", "small": "openai/gpt-4o-mini"}, lm="fast")
    assert cfg.resolve_lm() == "openai/gpt-4o-mini"
    assert cfg.resolve_lm("embedded") == "embedded"
    assert Dspex().resolve_lm() is None
    loop = Dspex(aliases={"a": "b", "b": "a"})
    with pytest.raises(ConfigurationError, match="aliases loop"):
        loop.resolve_lm("a")


def test_loaded_from_ipython_style_config():
    c = Config()
    c.Dspex.lm = "openai/gpt-4o-mini"
    c.Dspex.concurrency = 4
    cfg = Dspex(config=c)
    assert cfg.lm == "openai/gpt-4o-mini" and cfg.concurrency == 4


def test_get_config_is_a_singleton():
    assert get_config() is get_config() is Dspex.instance()
