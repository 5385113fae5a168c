"""``python -m dspex_lab.lm_server``: run the embedded LM server until SIGTERM or Ctrl-C.

    $ python -m dspex_lab.lm_server --port 0 --latency-ms 20 --error-rate 0.05
    dspex-lab LM server listening on http://127.0.0.1:41234/v1

The first line printed is always that one (tools read the URL from it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.lm_server.options import ERROR_KINDS, ServerOptions
from dspex_lab.lm_server.server import LISTENING, LMServer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dspex_lab.lm_server",
                                description="Run the embedded OpenAI-compatible LM server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--latency-ms", type=float, default=None)
    p.add_argument("--jitter-ms", type=float, default=None)
    p.add_argument("--error-rate", type=float, default=None, help="0..1")
    p.add_argument("--error-kinds", default=None,
                   help=f"comma-separated, among {','.join(ERROR_KINDS)}")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--retry-after-s", type=float, default=None)
    p.add_argument("--hang-s", type=float, default=None)
    p.add_argument("--stream-chunk-ms", type=float, default=None)
    p.add_argument("--rules", default=None, help="a JSON or YAML rules file")
    p.add_argument("--responder", default=None, help="module:function")
    p.add_argument("--responder-pickle", default=None, help=argparse.SUPPRESS)
    p.add_argument("--options-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    return p


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Server options from the command line (``--options-json`` first, flags override it)."""
    options: dict[str, Any] = json.loads(args.options_json) if args.options_json else {}
    for name in ("latency_ms", "jitter_ms", "error_rate", "seed", "retry_after_s", "hang_s",
                 "stream_chunk_ms", "rules", "responder"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.error_kinds:
        options["error_kinds"] = [k for k in args.error_kinds.split(",") if k]
    if args.responder_pickle:
        import cloudpickle

        with open(args.responder_pickle, "rb") as f:
            options["responder"] = cloudpickle.load(f)
    return options


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = options_from_args(args)
        ServerOptions().with_changes(**options)  # validate before binding the port
        server = LMServer(**options).start(port=args.port, host=args.host)
    except (ConfigurationError, OSError, ValueError) as exc:
        print(f"dspex-lab LM server: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    if args.exit_with_parent:
        _watch_parent(done)
    print(f"{LISTENING}{server.url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def _watch_parent(done: threading.Event) -> None:
    parent = os.getppid()

    def watch() -> None:
        while not done.wait(1.0):
            if os.getppid() != parent:
                done.set()

    threading.Thread(target=watch, daemon=True, name="dspex-lm-parent-watch").start()


if __name__ == "__main__":
    sys.exit(main())
