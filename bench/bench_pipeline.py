"""Pipelines: the cost of a native step, and whether a DSPy pipeline keeps the workers busy.

    python bench/bench_pipeline.py            # about a minute; --quick for a smoke run

1. Native step overhead (goal < 50 µs per step): a pipeline of N trivial native steps
   against calling the same N functions directly, in the same run (median of rounds).
   Telemetry events stay on (the default), as in a notebook.
2. A pipeline of 3 DSPy steps over 1,000 rows with ``dspex_lab.batch.run`` on the
   ``general`` pool, against the embedded LM server in process mode with 20 ms latency.
   Baseline in the same run: one-step ``batch.run`` over the same rows (LM calls/s). Reported:
   rows/s, LM calls/s and their ratio to the baseline, and per-worker utilisation = task busy
   time (``pool.task_finished`` events) / wall time, plus worker CPU time / wall time.
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


# -- 1. native step overhead ---------------------------------------------------------------------

def inc(**fields):
    return next(iter(fields.values())) + 1


def bench_native(n_steps: int, repeats: int, rounds: int) -> None:
    from dspex_lab import telemetry
    from dspex_lab.pipeline import Pipeline, native

    steps = [native(inc, inputs=[f"v{i}"], output=f"v{i + 1}", name=f"s{i}")
             for i in range(n_steps)]
    pipeline = Pipeline(steps, name="bench")
    names = [f"v{i}" for i in range(n_steps)]

    def direct() -> None:
        state = {"v0": 0}
        for i, name in enumerate(names):
            state[f"v{i + 1}"] = inc(**{name: state[name]})

    def piped() -> None:
        pipeline(v0=0)

    def quiet() -> None:
        pipeline.run({"v0": 0}, telemetry=False)

    def emit_only() -> None:
        for name in names:
            telemetry.emit("pipeline.step", pipeline="bench", step=name, step_kind="native",
                           route="native", status="ok", latency_ms=0.001)

    assert pipeline(v0=0)[f"v{n_steps}"] == n_steps
    runs = (("direct", direct), ("pipeline", piped), ("quiet", quiet), ("emit", emit_only))
    results: dict[str, list[float]] = {label: [] for label, _ in runs}
    for _ in range(rounds):
        for label, fn in runs:
            t = time.perf_counter()
            for _ in range(repeats):
                fn()
            results[label].append((time.perf_counter() - t) / repeats)
    med = {label: statistics.median(v) for label, v in results.items()}
    d = med["direct"]
    print(f"\n1. Native step overhead: {n_steps} trivial steps x {repeats} runs, "
          f"median of {rounds} rounds")
    print(f"   direct calls             {d * 1e6:9.1f} µs per run "
          f"({d / n_steps * 1e6:.2f} µs/step)")
    for label, title in (("pipeline", "pipeline (telemetry on)"),
                         ("quiet", "pipeline (telemetry=False)")):
        p = med[label]
        per_step = (p - d) / n_steps * 1e6
        print(f"   {title:<26}{p * 1e6:9.1f} µs per run: overhead {per_step:7.1f} µs/step "
              f"(goal < 50 µs: {'met' if per_step < 50 else 'NOT met'})")
    print(f"   of which telemetry.emit   {med['emit'] / n_steps * 1e6:7.1f} µs per event "
          "(the bus checks every field name against its secret patterns)")


# -- 2. three DSPy steps over many rows ------------------------------------------------------------

def bench_pool(rows: int, latency_ms: float) -> None:
    import pandas as pd
    import psutil

    from dspex_lab import batch, telemetry
    from dspex_lab.lm_server import LMServer
    from dspex_lab.pipeline import Pipeline, dspy_step
    from dspex_lab.workers import get_pool

    server = LMServer(latency_ms=latency_ms).start(mode="process")
    try:
        lm = server.lm(cache=False, num_retries=0)
        pool = get_pool("general")
        pool.call(len, "warm")  # start the workers before timing
        pipeline = Pipeline([dspy_step("question -> answer"),
                             dspy_step("answer -> summary"),
                             dspy_step("summary -> title")], name="three")
        df = pd.DataFrame({"question": [f"What is {i} + {i % 9}?" for i in range(rows)]})
        run = {"lm": lm, "cache": False, "progress": False, "max_retries": 0}
        batch.run("question -> answer", df.head(50), **run)  # warm modules and connections
        batch.run(pipeline, df.head(50), **run)

        base_wall, _, base_cpu = _timed(pool, lambda: batch.run("question -> answer", df, **run),
                                        psutil=psutil)
        wall, busy, cpu = _timed(pool, lambda: batch.run(pipeline, df, **run), psutil=psutil)
        out = batch.run(pipeline, df.head(3), **run)
        assert out["error"].isna().all(), out["error"].tolist()
    finally:
        server.stop()
    base_calls = rows / base_wall
    calls = 3 * rows / wall
    print(f"\n2. Three DSPy steps over {rows} rows: batch.run on the general pool "
          f"({pool.size} workers), LM server in process mode, {latency_ms:g} ms latency")
    print(f"   baseline one-step batch.run  {base_wall:6.2f} s  {base_calls:7.1f} LM calls/s, "
          f"worker CPU {sum(base_cpu.values()) / rows * 1e3:.2f} ms per LM call")
    print(f"   3-step pipeline batch.run    {wall:6.2f} s  {calls:7.1f} LM calls/s "
          f"({rows / wall:.1f} rows/s), {calls / base_calls:.2f}x the baseline's call rate, "
          f"worker CPU {sum(cpu.values()) / (3 * rows) * 1e3:.2f} ms per LM call")
    for pid in sorted(busy):
        cpu_part = f", CPU {cpu.get(pid, 0.0) / wall:5.1%}" if pid in cpu else ""
        print(f"   worker {pid}: busy {busy[pid] / 1e3 / wall:6.1%} of wall time{cpu_part}")
    if not busy:
        print("   (no pool.task_finished events: task_events is off)")
    del telemetry


def _timed(pool, fn, psutil=None):
    from dspex_lab import telemetry

    events: list = []
    unsubscribe = telemetry.subscribe(
        lambda e: events.append(e) if e.kind == "pool.task_finished" else None)
    pids = [w.pid for w in getattr(pool, "_workers", []) if getattr(w, "pid", None)]
    before = _cpu(pids, psutil) if psutil else {}
    t = time.perf_counter()
    try:
        fn()
    finally:
        wall = time.perf_counter() - t
        unsubscribe()
    after = _cpu(pids, psutil) if psutil else {}
    busy: dict[int, float] = {}
    for e in events:
        busy[e.fields["worker"]] = busy.get(e.fields["worker"], 0.0) + e.fields["duration_ms"]
    cpu = {pid: after[pid] - before[pid] for pid in after if pid in before}
    return wall, busy, cpu


def _cpu(pids, psutil) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except Exception:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    print(f"Pipeline benchmark ({os.cpu_count()} CPUs; noisy if the machine is shared)")
    bench_native(n_steps=20, repeats=200 if args.quick else 2000, rounds=3 if args.quick else 5)
    bench_pool(rows=200 if args.quick else 1000, latency_ms=20)
    from dspex_lab.workers import shutdown_all

    shutdown_all()


if __name__ == "__main__":
    main()
