"""``%%dspex`` in a real ipykernel (nbclient runs a tiny notebook): the answer is shown as
HTML and text, an error is one ``UsageError`` line, ``VAR << %dspex`` assigns, and what code
in a worker prints shows in the cell."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]

CELLS = [
    "%load_ext dspex_lab\n"
    "import dspex_lab\n"
    "from dspex_lab.workers import configure_pools\n"
    "configure_pools({'general': {'size': 1}})\n"
    "dspex_lab.configure(lm='embedded')",
    "%%dspex question -> answer --out ans\nWhat is the capital of France?",
    "%%dspex question -> answer: flot\nhi",
    "import pandas as pd\nqs = pd.DataFrame({'question': ['What is 2 + 3?']})\n"
    "res << %dspex question -> answer --df qs\n"
    "print(ans.answer, list(res['answer']), type(_dspex).__name__)",
    # what code running in a worker prints shows in the cell, not on the kernel's terminal
    "import dspy\n"
    "from dspex_lab.workers import get_pool\n"
    "def shout(x):\n"
    "    print('worker says', x)\n"
    "    return x\n"
    "class Loud(dspy.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.p = dspy.Predict('question -> answer')\n"
    "    def forward(self, question):\n"
    "        print('row:', question)\n"
    "        return self.p(question=question)\n"
    "print('result', get_pool().call(shout, 7))\n"
    "out = dspex_lab.run(Loud(), pd.DataFrame({'question': ['What is 1 + 1?']}),\n"
    "                    progress=False)",
]


def test_dspex_cell_in_a_real_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.cells[2].metadata["tags"] = ["raises-exception"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]),
               DSPEX_CACHE_DIR=str(tmp_path / "cache"), DSPY_CACHEDIR=str(tmp_path / "dspy"))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.km = client.create_kernel_manager()
    client.km.kernel_spec.argv[0] = sys.executable
    client.start_new_kernel(env=env)
    client.execute(cleanup_kc=True, reset_kc=False)

    answer = next(o for o in nb.cells[1].outputs if o.output_type == "execute_result")
    assert "answer='Paris'" in answer.data["text/plain"]
    html = answer.data["text/html"]
    assert 'class="dspex-prediction"' in html and "Paris" in html
    assert "pool" in html and "149 + 12 tokens" in html

    error = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "UsageError: The signature does not parse" in error and "^" in error
    assert not any(o.output_type == "error" for o in nb.cells[2].outputs)

    printed = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.output_type == "stream"
                      and o.name == "stdout")
    assert printed.strip().endswith("Paris ['5'] DataFrame")

    relayed = "".join(o.get("text", "") for o in nb.cells[4].outputs
                      if o.output_type == "stream" and o.name == "stdout")
    assert relayed.splitlines() == ["worker says 7", "result 7", "row: What is 1 + 1?"]


def test_loaded_from_ipython_config(tmp_path):
    """``c.InteractiveShellApp.extensions = ["dspex_lab"]`` and ``c.Dspex.*`` in a profile."""
    import subprocess

    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["dspex_lab"]\n'
        'c.Dspex.module = "cot"\nc.Dspex.aliases = {"fast": "openai/gpt-4o-mini"}\n')
    code = ("ip = get_ipython(); from dspex_lab.config import get_config; cfg = get_config(); "
            "print(ip.find_cell_magic('dspex') is not None, cfg in ip.configurables, "
            "cfg.module, cfg.resolve_lm('fast'))")
    env = dict(os.environ, IPYTHONDIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "-c", code],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "True True cot openai/gpt-4o-mini", \
        proc.stdout + proc.stderr
