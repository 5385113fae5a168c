"""The ``dspex-lab`` command: ``demo``, ``lab``, ``serve``.

    $ dspex-lab demo            # embedded LM, a signature over a DataFrame, results + telemetry
    $ dspex-lab lab             # JupyterLab on the tutorial notebooks
    $ dspex-lab serve --port 8000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEMO_QUESTIONS = [
    "What is the capital of France?",
    "What is 12 * 7?",
    "What is the capital of Japan?",
    "What is 100 - 58?",
    "What is the largest planet in the solar system?",
    "Who wrote Hamlet?",
    "What is 3 + 4?",
    "What is the capital of Italy?",
]


def demo(rows: int = 8, workers: int | None = None) -> int:
    """Run a signature over a small DataFrame on the embedded LM; print results and telemetry."""
    import pandas as pd

    import dspex_lab
    from dspex_lab import telemetry

    start = time.perf_counter()
    questions = [DEMO_QUESTIONS[i % len(DEMO_QUESTIONS)] for i in range(rows)]
    df = pd.DataFrame({"question": questions})
    sig = dspex_lab.signature("question -> answer: str, confidence: float")
    print(f"signature: {sig}")
    if workers:
        from dspex_lab.workers import configure_pools

        configure_pools({"general": {"size": workers}})
    results = dspex_lab.run(sig, df, progress=sys.stderr.isatty())
    wall = time.perf_counter() - start
    with pd.option_context("display.width", 120, "display.max_colwidth", 48):
        print(results[["question", "answer", "confidence", "status", "error", "latency_ms",
                       "prompt_tokens", "completion_tokens", "cost"]].to_string())
    usage = results.attrs.get("usage", {})
    print("\nsummary")
    for key, value in usage.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"  {key:>18}: {shown}")
    print(f"  {'wall time (s)':>18}: {wall:.2f}  (includes starting the workers)")
    routes = telemetry.events("router.route")
    if len(routes):
        print("\nrouting decisions")
        print(routes.groupby(["operation", "route"]).size().to_string())
    return demo_exit_code(results)


def demo_exit_code(results: Any) -> int:
    """1 when no row was answered (every row failed or never ran), else 0; read from the
    ``status`` column, never from the error text."""
    from dspex_lab.batch.status import CACHED, OK

    answered = int(results["status"].isin([OK, CACHED]).sum())
    return 0 if answered or not len(results) else 1


def lab(notebooks: str | None = None, extra: Sequence[str] = ()) -> int:
    """Open JupyterLab on the tutorial notebooks."""
    import subprocess

    root = Path(notebooks or Path.cwd() / "notebooks")
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *extra]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    return subprocess.call(cmd)


def serve(argv: Sequence[str]) -> int:
    """Run the embedded LM server in the foreground (same options as ``python -m``)."""
    from dspex_lab.lm_server.__main__ import main as server_main

    return server_main(list(argv)) or 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dspex-lab`` command (``demo``, ``lab``, ``serve``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="dspex-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run a signature over a DataFrame on the embedded LM")
    p_demo.add_argument("--rows", type=int, default=8)
    p_demo.add_argument("--workers", type=int, default=None)
    p_lab = sub.add_parser("lab", help="open JupyterLab on the tutorial notebooks")
    p_lab.add_argument("--notebooks", default=None)
    sub.add_parser("serve", help="run the embedded OpenAI-compatible LM server", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        return demo(args.rows, args.workers)
    if args.command == "lab":
        return lab(args.notebooks, rest)
    return serve(rest)


if __name__ == "__main__":
    raise SystemExit(main())
