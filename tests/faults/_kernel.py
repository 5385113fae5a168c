"""A tiny "kernel" for the fault tests: one ``batch.run`` in its own process, the result as
one JSON line on stdout (answers, statuses, errors, usage). The tests SIGKILL it, run two at
once, or resume its spill.

    python tests/faults/_kernel.py http://127.0.0.1:PORT/v1 200 --spill DIR --chunk 10
"""

import argparse
import json
import sys
import warnings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("rows", type=int)
    ap.add_argument("--spill", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--cache", action="store_true")
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--pool", default="general")
    a = ap.parse_args()

    import dspy
    import pandas as pd

    from dspex_lab import batch

    lm = dspy.LM("openai/dspex-embedded", api_base=a.url, api_key="x", cache=False,
                 num_retries=0)
    df = pd.DataFrame({"question": [f"What is {i} + {a.offset}?" for i in range(a.rows)]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = batch.run("question -> answer", df, lm=lm, progress=False, cache=a.cache,
                        spill=a.spill, resume=a.resume, chunk_size=a.chunk,
                        concurrency=a.concurrency, max_retries=0, pool=a.pool)
    print(json.dumps({"answers": out["answer"].tolist(), "status": out["status"].tolist(),
                      "errors": [e for e in out["error"].tolist() if isinstance(e, str)],
                      "usage": out.attrs.get("usage", {}),
                      "warnings": [str(w.message) for w in caught]}, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
