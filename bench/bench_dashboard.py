"""The live telemetry dashboard's cost on a batch run (goal: < 5% slowdown).

    python bench/bench_dashboard.py                 # 5,000 rows, 3 rounds (a few minutes)
    python bench/bench_dashboard.py --rows 1000 --rounds 1     # a smoke run

The same ``dspex_lab.batch.run`` (embedded LM server in process mode, no latency, result cache
off) runs on the ``general`` pool with and without a ``TelemetryDashboard`` subscribed. No
frontend is needed: the dashboard's thread still folds every event and rewrites its plotly
``FigureWidget`` in-process every 0.5 s, which is the work it adds to the kernel. Rounds
alternate (baseline, dashboard, baseline, ...) so drift hits both; reported: the median wall
time of each and their ratio, plus the dashboard's event count, refreshes and the CPU time its
thread used (``TelemetryDashboard.busy_s``), which depends far less on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.5, help="dashboard refresh (s)")
    args = parser.parse_args()

    import pandas as pd

    from dspex_lab import batch
    from dspex_lab.lm_server import LMServer
    from dspex_lab.widgets import TelemetryDashboard
    from dspex_lab.workers import get_pool

    server = LMServer(latency_ms=0.0).start(mode="process")
    try:
        lm = server.lm(cache=False, num_retries=0)
        pool = get_pool("general")
        pool.call(len, "warm")
        options = {"lm": lm, "cache": False, "progress": False, "max_retries": 0}
        frames = [pd.DataFrame({"question": [f"What is {i} + {r}?" for i in range(args.rows)]})
                  for r in range(2 * args.rounds)]
        batch.run("question -> answer", frames[0].head(100), **options)  # warm everything

        def timed(frame: pd.DataFrame) -> float:
            start = time.perf_counter()
            out = batch.run("question -> answer", frame, **options)
            wall = time.perf_counter() - start
            assert out["error"].isna().all(), out["error"].dropna().head().tolist()
            return wall

        base, dash_times, refreshes, calls, busy = [], [], [], [], []
        for r in range(args.rounds):
            base.append(timed(frames[2 * r]))
            dash = TelemetryDashboard(interval=args.interval)
            try:
                dash_times.append(timed(frames[2 * r + 1]))
                time.sleep(args.interval * 1.5)  # let the last events land
                refreshes.append(dash.updates)
                calls.append(dash.stats.calls)
                busy.append(dash.busy_s)
            finally:
                dash.close()
            print(f"   round {r + 1}: baseline {base[-1]:6.2f} s, with dashboard "
                  f"{dash_times[-1]:6.2f} s ({dash_times[-1] / base[-1]:.3f}x)")
    finally:
        server.stop()
    b, d = statistics.median(base), statistics.median(dash_times)
    ratio = d / b
    print(f"\nTelemetry dashboard cost: batch.run of {args.rows:,} rows on the general pool "
          f"({pool.size} workers), LM server in process mode, 0 ms latency, cache off, "
          f"median of {args.rounds} round(s)")
    print(f"   baseline              {b:7.2f} s  {args.rows / b:8.1f} rows/s")
    print(f"   with the dashboard    {d:7.2f} s  {args.rows / d:8.1f} rows/s  "
          f"ratio {ratio:.3f} (slowdown {100 * (ratio - 1):+.1f}%; goal < 5%: "
          f"{'met' if ratio < 1.05 else 'NOT met'})")
    print(f"   the dashboard folded {statistics.median(calls):,.0f} calls per run in "
          f"{statistics.median(refreshes):.0f} figure refreshes (every {args.interval:g} s), "
          f"using {statistics.median(busy) * 1e3:,.0f} ms of CPU = "
          f"{100 * statistics.median(busy) / b:.2f}% of the baseline's wall time "
          "(a noise-free bound on its share of the kernel)")


if __name__ == "__main__":
    main()
