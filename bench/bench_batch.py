"""Batch runs: ``dspex_lab.run`` vs ``dspy.Parallel`` and ``Predict.batch``, same run.

    python bench/bench_batch.py                 # 10,000 rows (a few minutes on 2 cores)
    python bench/bench_batch.py --rows 1000     # a quick run

Setup: the embedded LM server in its own process (``mode="process"``) with a fixed 20 ms
latency; every contender runs ``dspy.Predict("question -> answer")`` over the same rows with
the same total concurrency (``--concurrency``, default 32): ``dspy.Parallel`` and
``Predict.batch`` with that many threads in this process; ``dspex_lab.run`` on a pool of 2
workers (16 calls in flight in each), with its defaults (result cache and spill on, a fresh
cache so nothing is a hit), once with the default transport (the real ``dspy.LM``) and once
with ``transport="fast"``. Outputs are checked equal to ``dspy.Parallel``'s before any figure
is printed.

Also reported, for honesty: ``dspy.Parallel`` again after memoizing DSPy's pricing-metadata
lookup in this process (what dspex_lab's workers do), to show how much of the gain is that.
Memory: peak kernel memory (Python objects + Arrow buffers, each at its own peak, summed: an
upper bound) during an extra, untimed default ``run`` (result cache on disk in a fresh
directory, spill on, telemetry on) vs the size of the input and output frames (goal < 2x),
with the share of the telemetry buffer (one columnar ``lm.calls`` event per part).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import tracemalloc

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPEX_CACHE_DIR", tempfile.mkdtemp(prefix="dspex-bench-batch-"))


class PeakMemory:
    """Peak kernel memory while a block runs: Python objects (``tracemalloc``) plus Arrow
    buffers (``pa.total_allocated_bytes``, sampled every millisecond), above the start."""

    def __enter__(self) -> PeakMemory:
        import pyarrow as pa

        self._pa = pa
        self._stop = threading.Event()
        self.arrow_start = self.arrow_peak = pa.total_allocated_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        tracemalloc.start()
        self.py_start = tracemalloc.get_traced_memory()[0]
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.arrow_peak = max(self.arrow_peak, self._pa.total_allocated_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.python = tracemalloc.get_traced_memory()[1] - self.py_start
        tracemalloc.stop()
        self.arrow = self.arrow_peak - self.arrow_start

    @property
    def peak(self) -> int:
        return self.python + self.arrow


def timed(label: str, fn, rows: int, results: dict) -> object:
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    results[label] = rows / seconds
    print(f"  {label:<34} {seconds:7.2f} s  {rows / seconds:8.0f} rows/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import dspy
    import pandas as pd

    import dspex_lab.batch as batch
    from dspex_lab import telemetry
    from dspex_lab.batch.chunk import _speed_up_dspy
    from dspex_lab.cache import ResultCache, default_cache_path, set_cache
    from dspex_lab.lm.config import EMBEDDED_MODEL, LMSpec
    from dspex_lab.testing import running_server
    from dspex_lab.workers import WorkerPool

    n, conc = args.rows, args.concurrency
    df = pd.DataFrame({"question": [f"What is {i} + {i % 7}?" for i in range(n)]})
    expected = None
    rates: dict[str, float] = {}
    print(f"{n:,} rows, total concurrency {conc}, LM latency {args.latency_ms:g} ms, "
          f"{args.workers} workers, {os.cpu_count()} CPUs")
    with running_server(mode="process", latency_ms=args.latency_ms) as server, \
            WorkerPool("bench-batch", size=args.workers) as pool:
        pool.ready(timeout=180)
        lm = server.lm(num_retries=0, cache=False)
        spec = LMSpec(EMBEDDED_MODEL, {"api_base": server.url, "api_key": "x"})
        predict = dspy.Predict("question -> answer")
        examples = [dspy.Example(question=q).with_inputs("question") for q in df["question"]]
        # warm up every contender (imports, connections, worker caches)
        with dspy.context(lm=lm):
            predict.batch(examples[:64], num_threads=conc, disable_progress_bar=True)
        for transport in ("dspy", "fast"):
            set_cache(ResultCache(None))
            batch.run(predict, df.head(400), lm=spec, pool=pool, concurrency=conc,
                      progress=False, transport=transport, spill=False)

        def parallel():
            runner = dspy.Parallel(num_threads=conc, disable_progress_bar=True)
            with dspy.context(lm=lm):
                return runner([(predict, ex) for ex in examples])

        def dspex(transport):
            def go():
                set_cache(ResultCache(None))
                return batch.run(predict, df, lm=spec, pool=pool, concurrency=conc,
                                 progress=False, transport=transport)
            return go

        print("throughput:")
        out = timed("dspy.Parallel", parallel, n, rates)
        expected = [p.answer for p in out]
        with dspy.context(lm=lm):
            out = timed("Predict.batch", lambda: predict.batch(
                examples, num_threads=conc, disable_progress_bar=True), n, rates)
        assert [p.answer for p in out] == expected, "Predict.batch answers differ"
        frame = timed("dspex_lab.run (dspy.LM transport)", dspex("dspy"), n, rates)
        assert frame["answer"].tolist() == expected, "run() answers differ from dspy.Parallel"
        assert frame["error"].isna().all()
        frame_fast = timed("dspex_lab.run (fast transport)", dspex("fast"), n, rates)
        assert frame_fast["answer"].tolist() == expected, "fast transport answers differ"
        assert frame_fast.attrs["usage"]["fast_rows"] == n
        _speed_up_dspy()
        out = timed("dspy.Parallel + pricing memo", parallel, n, rates)
        assert [p.answer for p in out] == expected
        telemetry.clear()
        set_cache(ResultCache(default_cache_path()))  # the default: on disk (fresh directory)
        with PeakMemory() as mem:  # extra, untimed runs: tracing slows the kernel down
            frame = batch.run(predict, df, lm=spec, pool=pool, concurrency=conc,
                              progress=False)
        events = events_bytes()
        with PeakMemory() as mem_nocache:
            batch.run(predict, df, lm=spec, pool=pool, concurrency=conc, progress=False,
                      cache=False)

    base = rates["dspy.Parallel"]
    print("ratios vs dspy.Parallel (same run, same outputs):")
    for label, rate in rates.items():
        print(f"  {label:<34} {rate / base:6.2f}x")
    size_in = df.memory_usage(deep=True).sum()
    size_out = frame.memory_usage(deep=True).sum()
    frames = size_in + size_out
    mib = 2**20
    print(f"memory (kernel, during run()): peak {mem.peak / mib:.1f} MiB (Python "
          f"{mem.python / mib:.1f} + Arrow {mem.arrow / mib:.1f}) vs input frame "
          f"{size_in / mib:.1f} MiB + output frame {size_out / mib:.1f} MiB -> "
          f"{mem.peak / frames:.2f}x (goal < 2x)")
    cache_layer = max(0, mem.peak - mem_nocache.peak)
    rest = mem.peak - events - cache_layer
    print(f"  of which: lm.calls events in the telemetry buffer {events / mib:.2f} MiB, the "
          f"result cache {cache_layer / mib:.2f} MiB; the run itself {rest / mib:.2f} MiB")


def events_bytes() -> int:
    """About how much memory the telemetry events in the bus buffer take."""
    import sys

    from dspex_lab.telemetry import get_bus

    total = 0
    for event in get_bus().snapshot():
        total += sys.getsizeof(event) + sys.getsizeof(event.fields)
        total += sum(v.nbytes if hasattr(v, "nbytes") else sys.getsizeof(v)
                     for v in event.fields.values()
                     if hasattr(v, "nbytes") or (isinstance(v, float | int) and not -5 <= v <= 256))
    return total


if __name__ == "__main__":
    main()
