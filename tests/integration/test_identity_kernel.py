"""The edit-and-rerun loop in a real ipykernel (nbclient), with the result cache ON and one
warm worker: an edited class, a changed constructor attribute, a changed global read by a
tool, classes defined in a loop and a changed output type all give new answers -- and an
unchanged program is answered from the cache, also by a second kernel (the on-disk cache
works across kernel restarts)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]

SETUP = """\
import json
import dspy
import pandas as pd
import dspex_lab
from dspex_lab.workers import configure_pools
configure_pools({'general': {'size': 1}})
dspex_lab.configure(lm='embedded')
df = pd.DataFrame({'x': [1, 2, 3]})
def show(name, out, column='answer'):
    values = [v.item() if hasattr(v, 'item') else v for v in out[column]]
    print('RESULT', json.dumps({'name': name, 'values': values,
                                'cached': [bool(c) for c in out['cached']]}))
"""

ADD = """\
class Add(dspy.Module):
    def __init__(self):
        super().__init__()
        self.p = dspy.Predict('question -> answer')
    def forward(self, x):
        return self.p(question=f'What is {x} + 1?')
show('NAME', dspex_lab.run(Add(), df, progress=False))
"""

CELLS = [
    SETUP,
    ADD.replace("NAME", "first"),
    ADD.replace("+ 1?", "+ 10?").replace("NAME", "edited"),
    ADD.replace("NAME", "first again"),
    # a changed constructor attribute
    "class Plus(dspy.Module):\n"
    "    def __init__(self, k):\n"
    "        super().__init__()\n"
    "        self.k = k\n"
    "        self.p = dspy.Predict('question -> answer')\n"
    "    def forward(self, x):\n"
    "        return self.p(question=f'What is {x} + {self.k}?')\n"
    "show('plus 1', dspex_lab.run(Plus(1), df, progress=False))\n"
    "show('plus 5', dspex_lab.run(Plus(5), df, progress=False))",
    # a changed global read by a tool (ReAct on the embedded LM answers the tool's result)
    "OFFSET = 100\n"
    "def lookup(x: int) -> int:\n"
    "    '''Add the offset to x.'''\n"
    "    return x + OFFSET\n"
    "show('offset 100', dspex_lab.run(dspy.ReAct('x: int -> answer: int', tools=[lookup]),\n"
    "                                 df, progress=False))\n"
    "OFFSET = 200\n"
    "show('offset 200', dspex_lab.run(dspy.ReAct('x: int -> answer: int', tools=[lookup]),\n"
    "                                 df, progress=False))",
    # classes defined in a loop
    "classes = []\n"
    "for k in range(3):\n"
    "    class Const(dspy.Module):\n"
    "        K = k\n"
    "        def forward(self, x):\n"
    "            return dspy.Prediction(answer=x * 100 + self.K)\n"
    "    classes.append(Const)\n"
    "for i, cls in enumerate(classes):\n"
    "    show(f'loop {i}', dspex_lab.run(cls(), df, progress=False))",
    # the same signature text with another output type
    "texts = pd.DataFrame({'text': ['a', 'b']})\n"
    "show('list', dspex_lab.run(dspy.Predict('text -> value: list[int]'), texts,\n"
    "                           progress=False), 'value')\n"
    "show('bool', dspex_lab.run(dspy.Predict('text -> value: bool'), texts,\n"
    "                           progress=False), 'value')",
]


def _run_notebook(cells: list[str], tmp_path: Path) -> dict[str, dict]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
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
    results: dict[str, dict] = {}
    for c in nb.cells:
        for out in c.outputs:
            assert out.output_type != "error", "\n".join(out.get("traceback", []))
            if out.output_type == "stream" and out.name == "stdout":
                for line in out.text.splitlines():
                    if line.startswith("RESULT "):
                        found = json.loads(line[len("RESULT "):])
                        results[found.pop("name")] = found
    return results


@pytest.mark.slow
def test_edit_and_rerun_in_a_real_kernel_never_gives_a_stale_answer(tmp_path):
    r = _run_notebook(CELLS, tmp_path)

    assert r["first"] == {"values": ["2", "3", "4"], "cached": [False] * 3}
    assert r["edited"] == {"values": ["11", "12", "13"], "cached": [False] * 3}
    assert r["first again"] == {"values": ["2", "3", "4"], "cached": [True] * 3}

    assert r["plus 1"]["values"] == ["2", "3", "4"]
    assert r["plus 5"] == {"values": ["6", "7", "8"], "cached": [False] * 3}

    assert r["offset 100"]["values"] == [101, 102, 103]
    assert r["offset 200"] == {"values": [201, 202, 203], "cached": [False] * 3}

    assert [r[f"loop {i}"]["values"] for i in range(3)] == [
        [100, 200, 300], [101, 201, 301], [102, 202, 302]]

    assert all(isinstance(v, list) for v in r["list"]["values"])
    assert all(isinstance(v, bool) for v in r["bool"]["values"])
    assert r["bool"]["cached"] == [False, False]

    # a new kernel, the same cells: the same keys, so the on-disk cache answers
    again = _run_notebook(CELLS[:2], tmp_path)
    assert again["first"] == {"values": ["2", "3", "4"], "cached": [True] * 3}
