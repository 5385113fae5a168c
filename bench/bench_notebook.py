"""What ``%%dspex`` costs on top of ``dspex_lab.predict``, through a real in-process IPython.

Every call asks the same question, so after the first one every answer is a cache hit: what is
left is pure overhead (input parsing, validation, routing, the cache lookup, history, storing
``_dspex``, display formatting). Four ways, interleaved, many rounds, medians:

    predict()       dspex_lab.predict(...) called from Python           (the baseline)
    magic()         shell.run_cell_magic("dspex", line, body)           (the magic alone)
    cell: predict   shell.run_cell("dspex_lab.predict(...)")             (a cell, displayed)
    cell: %%dspex   shell.run_cell("%%dspex ...\\n<body>")                (a cell, displayed)

Both cells are displayed the way a notebook would (text/plain and text/html formatters on),
so the cell-vs-cell difference is what the magic adds to a cell. Goal: < 1 ms.

    python bench/bench_notebook.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPEX_CACHE_DIR", tempfile.mkdtemp(prefix="dspex-bench-cache-"))
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspex-bench-dspy-"))

QUESTION = "What is the capital of France?"
SIG = "question -> answer"


def _timer(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell

    import dspex_lab

    shell = InteractiveShell.instance()
    shell.display_formatter.active_types = ["text/plain", "text/html"]
    shell.run_line_magic("load_ext", "dspex_lab")
    dspex_lab.configure(lm="embedded")
    shell.user_ns["dspex_lab"] = dspex_lab

    first = dspex_lab.predict(SIG, question=QUESTION)      # warms the pool and the cache
    assert first.answer == "Paris"
    assert dspex_lab.predict(SIG, question=QUESTION)._dspex.cached

    cell_predict = f"dspex_lab.predict({SIG!r}, question={QUESTION!r})"
    cell_magic = f"%%dspex {SIG}\n{QUESTION}"
    ways = {
        "predict()": lambda: dspex_lab.predict(SIG, question=QUESTION),
        "magic()": lambda: shell.run_cell_magic("dspex", SIG, QUESTION),
        "cell: predict": lambda: shell.run_cell(cell_predict, store_history=False),
        "cell: %%dspex": lambda: shell.run_cell(cell_magic, store_history=False),
    }
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for fn in ways.values():                            # warm-up
            for _ in range(50):
                fn()
        result = shell.run_cell(cell_magic, store_history=False)
        assert result.success and result.result._dspex.cached, result.error_in_exec
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for i in range(args.rounds):
            for name, fn in ways.items():
                samples[name].append(_timer(fn))
            if i % 200 == 0:
                sink.seek(0)
                sink.truncate()

    med = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
    p90 = {name: statistics.quantiles(s, n=10)[-1] * 1e6 for name, s in samples.items()}
    print(f"cached answer, {args.rounds} rounds each (interleaved), median / p90 in µs:")
    for name in ways:
        print(f"  {name:<15} {med[name]:9.1f} / {p90[name]:9.1f}")
    magic_only = med["magic()"] - med["predict()"]
    in_cell = med["cell: %%dspex"] - med["cell: predict"]
    print(f"overhead of the magic over predict():        {magic_only:8.1f} µs "
          f"(ratio {med['magic()'] / med['predict()']:.2f}x)")
    print(f"overhead of a %%dspex cell over a predict cell: {in_cell:8.1f} µs "
          f"(ratio {med['cell: %%dspex'] / med['cell: predict']:.2f}x)")
    goal = max(magic_only, in_cell) < 1000
    print(f"goal < 1 ms: {'met' if goal else 'NOT met'}")
    shell.run_line_magic("unload_ext", "dspex_lab")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
