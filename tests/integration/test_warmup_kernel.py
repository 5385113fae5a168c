"""Warm start in a real ipykernel: ``%load_ext dspex_lab`` starts the ``general`` pool and
imports DSPy in the background without waiting for it; settings made afterwards still apply;
``DSPEX_WARM_POOL=0`` and ``Dspex.warm_pool = False`` turn it off."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]


def run_cells(tmp_path: Path, cells: list[str], **env: str) -> list[str]:
    """Run ``cells`` in a new kernel; each cell's stdout."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    kernel_env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]),
        DSPEX_CACHE_DIR=str(tmp_path / "cache"), DSPY_CACHEDIR=str(tmp_path / "dspy"), **env)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.km = client.create_kernel_manager()
    client.km.kernel_spec.argv[0] = sys.executable
    client.start_new_kernel(env=kernel_env)
    client.execute(cleanup_kc=True, reset_kc=False)
    return ["".join(o.get("text", "") for o in cell.outputs
                    if o.output_type == "stream" and o.name == "stdout").strip()
            for cell in nb.cells]


def test_load_ext_warms_the_pool_in_the_background_and_later_settings_apply(tmp_path):
    out = run_cells(tmp_path, [
        "import sys\n%load_ext dspex_lab\nfrom dspex_lab import warmup\nprint(warmup.state())",
        "import dspex_lab\nprint(warmup.wait(120), warmup.state(), 'dspy' in sys.modules,\n"
        "      [(p['name'], p['alive'], p['tasks_done']) for p in dspex_lab.pool_status()])",
        # settings after loading are honoured: pool size in place, the LM chosen now
        "from dspex_lab.workers import configure_pools\n"
        "configure_pools({'general': {'size': 1}})\n"
        "dspex_lab.configure(lm='embedded')\n"
        "r = dspex_lab.predict('question -> answer', question='What is the capital of France?')\n"
        "print(r.answer, r._dspex.route, dspex_lab.pool_status()[0]['size'])",
    ])
    assert out[0] == "warming"  # %load_ext returned at once; the workers take seconds to start
    assert out[1] == f"True warm True [('general', {os.cpu_count()}, 0)]"
    assert out[2] == "Paris pool 1"


def test_warm_up_can_be_turned_off(tmp_path):
    off = run_cells(tmp_path / "env", [
        "%load_ext dspex_lab\nimport dspex_lab, sys\nfrom dspex_lab import warmup\n"
        "print(warmup.state(), dspex_lab.pool_status(), 'dspy' in sys.modules)",
    ], DSPEX_WARM_POOL="0")
    assert off == ["idle [] False"]

    released = run_cells(tmp_path / "config", [
        "%load_ext dspex_lab\nimport dspex_lab\nfrom dspex_lab import warmup\n"
        "warmup.wait(120)\nprint(len(dspex_lab.pool_status()))",
        "%config Dspex.warm_pool = False\nprint(warmup.state(), dspex_lab.pool_status())",
    ])
    assert released == ["1", "released []"]
