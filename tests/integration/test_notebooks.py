"""The tutorial notebooks, run top to bottom by nbval in a fresh kernel and compared with their
stored outputs (volatile text masked by ``notebooks/sanitize.cfg``; wholly volatile cells are
tagged ``nbval-ignore-output``).

Each notebook gets its own pytest process and fresh result/DSPy caches, so its cache hits and
misses (shown in the outputs) are the same as when the outputs were stored. To store new
outputs after changing a notebook::

    cd notebooks && DSPEX_CACHE_DIR=$(mktemp -d) DSPY_CACHEDIR=$(mktemp -d) \\
        ../.venv/bin/jupyter nbconvert --to notebook --execute --inplace \\
        --ExecutePreprocessor.store_widget_state=False 0X_name.ipynb
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("nbval")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_tutorial_is_here():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_matches_its_stored_outputs(notebook: Path):
    env = dict(os.environ, DSPEX_CACHE_DIR=tempfile.mkdtemp(prefix="dspex-nb-cache-"),
               DSPY_CACHEDIR=tempfile.mkdtemp(prefix="dspex-nb-dspy-"),
               LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("DSPEX_LM", None)
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", str(ROOT / "notebooks" / "sanitize.cfg"),
           "--nbval-cell-timeout", "180", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
           str(notebook)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{notebook.name} failed nbval:\n{proc.stdout[-6000:]}"
