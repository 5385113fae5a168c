"""WorkerPool against its peers, measured in one run with 2 workers each.

    python bench/bench_pool.py            # a few minutes; --quick for a smoke run,
                                          # --only tasks|warm|frames for one part

1. No-op round trip (p50/p99 of submit + result, one at a time) and throughput (tasks/s of
   ``map`` and of submit-all-then-wait) for WorkerPool, ``ProcessPoolExecutor`` and
   ``loky.get_reusable_executor``. Rounds alternate between executors; the median round is
   shown, so a noisy neighbour hurts everyone alike.
2. Time until N warm workers (N = 2, 4) that have imported DSPy are ready, against one
   ``python -c "import dspy"`` measured just before (goal: < 2x).
3. A 1M-row DataFrame (int, float, str) through a worker and back: Arrow (the protocol's
   native path for tables) against pickle (the protocol's path for any other object) and
   JSON text (goal: Arrow >= 10x JSON), plus the frame pickled by hand into ``bytes`` (which
   the protocol sends inline through the socket, not in shared memory). The times include
   encoding and decoding on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

WORKERS = 2


def noop(x=None):
    return x


def echo_pickle(data: bytes) -> bytes:
    return pickle.dumps(pickle.loads(data), protocol=5)


class Opaque:
    """Hides a DataFrame from the protocol's Arrow path: it travels pickled (protocol 5,
    buffers out of band, in shared memory when large), as any other Python object does."""

    def __init__(self, value: object) -> None:
        self.value = value


def echo_json(text: str) -> str:
    import pandas as pd

    return pd.read_json(StringIO(text), orient="split").to_json(orient="split")


def round_trips(submit, n: int) -> tuple[float, float]:
    lat = []
    for i in range(n):
        t = time.perf_counter()
        submit(noop, i).result()
        lat.append(time.perf_counter() - t)
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6


def throughput(run, n: int) -> float:
    t = time.perf_counter()
    run(n)
    return n / (time.perf_counter() - t)


def executors():
    import loky

    from dspex_lab.workers import WorkerPool

    pool = WorkerPool("bench", size=WORKERS, preload=())
    quiet = WorkerPool("bench-quiet", size=WORKERS, preload=(), task_events=False)
    ppe = ProcessPoolExecutor(WORKERS)
    lky = loky.get_reusable_executor(max_workers=WORKERS, timeout=600)
    out = {
        "WorkerPool": (pool.submit, lambda n: list(pool.map(noop, range(n)))),
        "WorkerPool (task_events=False)": (quiet.submit,
                                           lambda n: list(quiet.map(noop, range(n)))),
        "ProcessPoolExecutor": (ppe.submit, lambda n: list(ppe.map(noop, range(n)))),
        "loky": (lky.submit, lambda n: list(lky.map(noop, range(n)))),
    }
    pool.ready(120)
    quiet.ready(120)
    return out, (pool, quiet, ppe, lky)


def bench_round_trips(quick: bool) -> None:
    n_rt, n_tp, rounds = (200, 2000, 1) if quick else (1000, 10000, 3)
    runners, (pool, quiet, ppe, lky) = executors()
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in runners}
    for submit, run_map in runners.values():  # warm up
        run_map(200)
        round_trips(submit, 50)
    for _ in range(rounds):
        for name, (submit, run_map) in runners.items():
            p50, p99 = round_trips(submit, n_rt)
            tp_map = throughput(run_map, n_tp)
            tp_submit = throughput(lambda n, s=submit: [f.result() for f in
                                                         [s(noop, i) for i in range(n)]], n_tp)
            rows[name].append((p50, p99, tp_map, tp_submit))
    pool.shutdown()
    quiet.shutdown()
    ppe.shutdown()
    lky.shutdown(wait=True)
    print(f"\n1. No-op tasks, {WORKERS} workers, median of {rounds} round(s) "
          f"({n_rt} round trips, {n_tp} tasks per throughput run)")
    print(f"{'executor':32} {'p50 us':>9} {'p99 us':>9} {'map/s':>9} {'submit/s':>9}")
    medians = {}
    for name, values in rows.items():
        med = tuple(statistics.median(v[i] for v in values) for i in range(4))
        medians[name] = med
        print(f"{name:32} {med[0]:9.0f} {med[1]:9.0f} {med[2]:9.0f} {med[3]:9.0f}")
    ours = medians["WorkerPool"]
    peers = [v for k, v in medians.items() if not k.startswith("WorkerPool")]
    best_p50 = min(p[0] for p in peers)
    best_map = max(p[2] for p in peers)
    best_submit = max(p[3] for p in peers)
    print(f"WorkerPool vs best peer: p50 {best_p50 / ours[0]:.2f}x faster, map "
          f"{ours[2] / best_map:.2f}x, submit {ours[3] / best_submit:.2f}x "
          "(>= 1.0 meets the goal)")


def bench_warm_start(quick: bool) -> None:
    from dspex_lab.workers import WorkerPool

    print("\n2. Warm workers with DSPy imported, against one `import dspy` in a fresh process "
          "(wall time of `python -c 'import dspy'`, measured right before each pool)")
    print(f"{'workers':>8} {'ready in s':>11} {'import dspy s':>14} {'ratio':>7}")
    for n in (2, 4):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import dspy"], check=True)
        one_import = time.perf_counter() - t
        t = time.perf_counter()
        pool = WorkerPool(f"warm{n}", size=n, preload=("dspy",), start="eager")
        assert pool.ready(300)
        seconds = time.perf_counter() - t
        assert all(pool.map(_has_dspy, range(n))), "dspy is not imported in the workers"
        pool.shutdown()
        print(f"{n:8d} {seconds:11.2f} {one_import:14.2f} {seconds / one_import:6.2f}x"
              "  (goal < 2x)")


def _has_dspy(_: object = None) -> bool:
    return "dspy" in sys.modules


def bench_dataframe(quick: bool) -> None:
    import numpy as np
    import pandas as pd

    from dspex_lab.workers import WorkerPool

    rows = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"i": np.arange(rows), "x": rng.random(rows),
                       "s": [f"row-{i}" for i in range(rows)]})
    pool = WorkerPool("frames", size=WORKERS, preload=("pandas", "pyarrow"))
    pool.ready(120)

    def arrow() -> None:
        back = pool.call(noop, df)
        assert len(back) == rows

    def pickled() -> None:
        back = pool.call(noop, Opaque(df))  # any non-table object: a pickle attachment
        assert len(back.value) == rows

    def pickled_bytes() -> None:  # bytes are not attachments: they travel inline
        back = pickle.loads(pool.call(echo_pickle, pickle.dumps(df, protocol=5)))
        assert len(back) == rows

    def as_json() -> None:
        back = pd.read_json(StringIO(pool.call(echo_json, df.to_json(orient="split"))),
                            orient="split")
        assert len(back) == rows

    arrow()  # warm up both sides (imports, allocators)
    pickled()
    results = {}
    for name, fn, reps in (("Arrow (protocol)", arrow, 3), ("pickle (protocol)", pickled, 3),
                           ("pickle bytes", pickled_bytes, 1), ("JSON", as_json, 1)):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        results[name] = min(times)
    pool.shutdown()
    print(f"\n3. DataFrame round trip through a worker ({rows:,} rows: int, float, str)")
    print(f"{'format':20} {'seconds':>9} {'x JSON':>8}")
    for name, seconds in results.items():
        print(f"{name:20} {seconds:9.3f} {results['JSON'] / seconds:7.1f}x")
    print(f"Arrow vs JSON: {results['JSON'] / results['Arrow (protocol)']:.1f}x (goal >= 10x); "
          f"Arrow vs pickle: {results['pickle (protocol)'] / results['Arrow (protocol)']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--only", choices=["tasks", "warm", "frames"], action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = args.only or ["tasks", "warm", "frames"]
    print(f"bench_pool: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    if "tasks" in parts:
        bench_round_trips(args.quick)
    if "warm" in parts:
        bench_warm_start(args.quick)
    if "frames" in parts:
        bench_dataframe(args.quick)
    print(json.dumps({"load_average_after": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
