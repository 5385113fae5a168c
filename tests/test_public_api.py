"""The public face: ``dspex_lab`` lists 15 names; older spellings still resolve; every lazy
package resolves what it lists; importing stays light; the environment is set in one place."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import dspex_lab

ROOT = Path(__file__).resolve().parents[1]

FACE = {"signature", "Signature", "configure", "predict", "chain_of_thought", "react", "run",
        "last_run", "estimate", "evaluate", "optimize", "load", "Pipeline", "template",
        "errors"}


def test_the_public_face_is_fifteen_names():
    assert set(dspex_lab.__all__) == FACE | {"__version__"}
    assert set(dir(dspex_lab)) == FACE | {"__version__", "load_ipython_extension",
                                          "unload_ipython_extension"}
    assert dspex_lab.errors is importlib.import_module("dspex_lab.errors")


@pytest.mark.parametrize(("name", "home"), [
    ("get_pool", "dspex_lab.workers"), ("pool_status", "dspex_lab.workers"),
    ("record", "dspex_lab.batch"), ("replay", "dspex_lab.batch"),
    ("Field", "dspex_lab.signatures"), ("get_lm", "dspex_lab.lm"),
    ("CompiledProgram", "dspex_lab.persistence"), ("DspexError", "dspex_lab.errors"),
    ("get_router", "dspex_lab.router"), ("Template", "dspex_lab.native.templates"),
])
def test_older_top_level_spellings_still_resolve_to_the_same_objects(name, home):
    assert getattr(dspex_lab, name) is getattr(importlib.import_module(home), name)


def test_submodules_resolve_and_unknown_names_fail_clearly():
    assert dspex_lab.metrics is importlib.import_module("dspex_lab.native.metrics")
    assert dspex_lab.widgets.dashboard is importlib.import_module("dspex_lab.widgets.dashboard")
    with pytest.raises(AttributeError, match="module 'dspex_lab' has no attribute 'nope'"):
        dspex_lab.nope  # noqa: B018


@pytest.mark.parametrize("package", ["dspex_lab.workers", "dspex_lab.widgets",
                                     "dspex_lab.exchange", "dspex_lab.lm"])
def test_every_lazy_package_resolves_what_it_lists(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))


def test_importing_dspex_lab_imports_neither_dspy_nor_pandas():
    code = ("import sys, dspex_lab, os; "
            "print(sorted(m for m in ('dspy', 'pandas', 'pyarrow', 'litellm') if m in sys.modules),"
            " os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=60).stdout.strip()
    assert out == "[] True"


def test_the_environment_is_set_in_one_place():
    setters = [str(p.relative_to(ROOT)) for p in (ROOT / "dspex_lab").rglob("*.py")
               if "LITELLM_LOCAL_MODEL_COST_MAP" in p.read_text()]
    assert setters == ["dspex_lab/_env.py"]
