"""Moving a 1M-row DataFrame (int, float, str) through the wire protocol, against baselines.

    python bench/bench_protocol.py [rows]

Every codec is measured in the same run, serialize + deserialize (pandas DataFrame in,
pandas DataFrame out, equality checked once per codec):

* arrow:  ``protocol.pack(msg, fmt="arrow")`` + ``protocol.unpack`` (Arrow IPC inline)
* shm:    ``protocol.pack(msg, fmt="shm")`` + ``protocol.unpack`` (Arrow IPC in /dev/shm)
* pickle: ``pickle.dumps(df, protocol=5)`` + ``pickle.loads`` (the baseline to match)
* json:   ``df.to_json(orient="records")`` + ``pd.read_json`` (the baseline to beat, >= 10x)

It also prints the fixed cost per message for a 10-row frame (arrow vs pickle).

The figure is the best of several repeats (JSON: one run, it takes seconds). The machine is
shared, so absolute numbers are noisy; the ratios measured in one run are what to compare.
"""

from __future__ import annotations

import io
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dspex_lab.workers import protocol


def make_frame(rows: int) -> pd.DataFrame:
    """``rows`` rows of int, float and str (pandas' default ``str`` dtype)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "score": rng.random(rows),
        "question": pd.Series(np.arange(rows)).astype(str).radd("question number "),
    })


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _codecs(df: pd.DataFrame) -> dict[str, Callable[[], pd.DataFrame]]:
    return {
        "arrow": lambda: protocol.unpack(protocol.pack({"id": 1, "df": df}, fmt="arrow"))["df"],
        "shm": lambda: protocol.unpack(protocol.pack({"id": 1, "df": df}, fmt="shm"))["df"],
        "pickle": lambda: pickle.loads(pickle.dumps(df, protocol=5)),
        "json": lambda: pd.read_json(io.StringIO(df.to_json(orient="records")),
                                     orient="records"),
    }


def bench_transfer(rows: int = 1_000_000, repeats: int = 5) -> dict[str, float]:
    """Seconds to serialize + deserialize a ``rows``-row DataFrame per codec, plus ratios.

    Returns ``{"arrow": s, "shm": s, "pickle": s, "json": s, "json_over_arrow": x,
    "pickle_over_arrow": x, "frame_bytes": n}``.
    """
    df = make_frame(rows)
    results: dict[str, float] = {}
    for name, fn in _codecs(df).items():
        seconds, back = _best(fn, 1 if name == "json" else repeats)
        pd.testing.assert_frame_equal(back, df, check_dtype=name != "json")
        results[name] = seconds
    results["json_over_arrow"] = results["json"] / results["arrow"]
    results["pickle_over_arrow"] = results["pickle"] / results["arrow"]
    results["json_over_shm"] = results["json"] / results["shm"]
    results["frame_bytes"] = len(protocol.pack({"id": 1, "df": df}, fmt="arrow"))
    return results


def bench_small(rows: int = 10, repeats: int = 300) -> dict[str, float]:
    """Per-message overhead for a small DataFrame (what a batch of a few rows costs)."""
    df = make_frame(rows)
    codecs = _codecs(df)
    return {name: _best(lambda fn=codecs[name]: [fn() for _ in range(10)], repeats // 10)[0]
            / 10 for name in ("arrow", "pickle")}


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    small = bench_small()
    r = bench_transfer(rows)
    print(f"{rows:,} rows (int, float, str), frame {r['frame_bytes'] / 1e6:.1f} MB, "
          "serialize + deserialize, best of 5 (json: 1 run)")
    for name in ("arrow", "shm", "pickle", "json"):
        print(f"  {name:<7} {r[name] * 1000:9.1f} ms")
    verdict = "ok" if r["json_over_arrow"] >= 10 else "BELOW GOAL"
    print(f"  arrow vs json:   {r['json_over_arrow']:6.1f}x faster (goal >= 10x: {verdict})")
    print(f"  shm vs json:     {r['json_over_shm']:6.1f}x faster")
    print(f"  arrow vs pickle: {r['pickle_over_arrow']:6.2f}x (>1 means arrow is faster)")
    print(f"10-row frame, per message: arrow {small['arrow'] * 1e3:.2f} ms, "
          f"pickle {small['pickle'] * 1e3:.2f} ms (pyarrow's pandas metadata handling)")


if __name__ == "__main__":
    main()
