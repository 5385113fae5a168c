"""The six tutorials as a user takes them: 01..06 one after another in ONE kernel with ONE
result cache, then again in a fresh kernel (a restart) over the same, now warm, cache.

Outputs are not compared (what comes from the cache legitimately differs); every cell must
run without an error, except those tagged ``raises-exception`` (they show an error on purpose).
Each tutorial alone, compared with its stored outputs, is ``test_notebooks.py``.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _tour(paths: list[Path]) -> nbformat.NotebookNode:
    """One notebook holding every code cell of ``paths`` in order, each cell's source led by
    a comment naming where it comes from (so an error says which tutorial and cell)."""
    tour = nbformat.v4.new_notebook()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        tour.metadata = tour.metadata or nb.metadata
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell = copy.deepcopy(cell)
            cell.outputs, cell.execution_count = [], None
            if not cell.source.startswith("%%"):   # a cell magic must stay on the first line
                cell.source = f"# {path.name}, cell {index}\n{cell.source}"
            tour.cells.append(cell)
    return tour


def _run_in_one_kernel(paths: list[Path], env: dict[str, str]) -> None:
    tour = _tour(paths)
    client = nbclient.NotebookClient(
        tour, timeout=180, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(ROOT / "notebooks")}})
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"a tutorial cell failed when run in sequence ({[p.name for p in paths]}):"
                    f"\n{str(exc)[-4000:]}")


@pytest.mark.slow
def test_all_tutorials_in_sequence_in_one_kernel_and_one_cache_then_again_after_a_restart():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]
    env = dict(os.environ, DSPEX_CACHE_DIR=tempfile.mkdtemp(prefix="dspex-tour-cache-"),
               DSPY_CACHEDIR=tempfile.mkdtemp(prefix="dspex-tour-dspy-"),
               LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("DSPEX_LM", None)
    _run_in_one_kernel(NOTEBOOKS, env)                  # a new user's first tour
    _run_in_one_kernel(NOTEBOOKS[::-1], env)            # Run All again, any order, warm cache
