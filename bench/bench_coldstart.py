"""Cold start: how long a new user waits for the first answer in a brand-new kernel.

Measured in real IPython kernels (jupyter_client), each with a fresh result cache, so the first
``%%dspex`` call really calls the LM (the embedded one):

    import dspex_lab          in a fresh interpreter (median of 5)          goal < 150 ms
    %load_ext dspex_lab       the cell's own time                           goal < 100 ms
    first %%dspex answer      --wait s after %load_ext, warm-up on (default) goal <= 1 s
    first %%dspex answer      the same kernel setup with DSPEX_WARM_POOL=0   (the baseline)

    python bench/bench_coldstart.py [--wait 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL = "%%dspex question -> answer\nWhat is the capital of France?"


def import_ms() -> float:
    code = ("import time; t = time.perf_counter(); import dspex_lab; "
            "print((time.perf_counter() - t) * 1e3)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ})
    return float(out.stdout.strip().splitlines()[-1])


def kernel_round(warm: bool, wait: float) -> tuple[float, float]:
    """(%load_ext seconds, first answer seconds) in a new kernel."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "DSPEX_CACHE_DIR": tempfile.mkdtemp(prefix="dspex-cold-"),
           "DSPY_CACHEDIR": tempfile.mkdtemp(prefix="dspex-cold-dspy-"),
           "DSPEX_WARM_POOL": "1" if warm else "0", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(ROOT))
    try:
        load = _timed(kc, "%load_ext dspex_lab")
        time.sleep(wait)
        first = _timed(kc, CELL)
        return load, first
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _timed(kc, code: str) -> float:
    """Seconds from the execute request to the reply (the cell's own wall time)."""
    start = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=120, output_hook=lambda _m: None)
    elapsed = time.perf_counter() - start
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {reply['content']}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=8.0,
                        help="seconds between %%load_ext and the first call (default 8)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    imports = [import_ms() for _ in range(5)]
    print(f"import dspex_lab: {statistics.median(imports):.0f} ms (median of 5; goal < 150 ms)")
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for warm in (True, False):  # interleaved, so both see the same machine
            results[warm].append(kernel_round(warm, args.wait))
    med = {w: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
           for w, rs in results.items()}
    print(f"{'':28}{'%load_ext':>12}{'first answer':>15}   (medians of {args.rounds}, "
          f"first call {args.wait:g} s after loading)")
    for warm, label in ((False, "no warm-up (baseline)"), (True, "warm-up at %load_ext")):
        load, first = med[warm]
        print(f"{label:28}{load * 1e3:>9.0f} ms{first:>13.2f} s")
    speedup = med[False][1] / med[True][1]
    print(f"first answer: {speedup:.1f}x faster with warm-up "
          f"(goal <= 1 s: {'met' if med[True][1] <= 1.0 else 'NOT met'}); "
          f"%load_ext goal < 100 ms: {'met' if med[True][0] < 0.1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
