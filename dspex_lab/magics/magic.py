"""The IPython magics. Each parses its arguments and calls one public function; the
``_usage_errors`` boundary turns dspex_lab errors into one ``UsageError`` paragraph.

    %%dspex [VAR <<] SIGNATURE [--module ...] [--lm ...] [--out VAR] ...
    %dspex  [VAR <<] SIGNATURE --df DATAFRAME [--out VAR] ...
    %dspex_lm [MODEL]    %dspex_pool [NAME]    %dspex_history [N]    %dspex_telemetry
    %dspex_cache [--clear]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import TraitError

from dspex_lab.config import MODULES
from dspex_lab.errors import (
    BudgetExceeded,
    DspexError,
    Interrupted,
    LMError,
    PoolError,
    RunError,
    SignatureError,
    TaskError,
)
from dspex_lab.kinds import ADAPTERS
from dspex_lab.magics._line import split_line
from dspex_lab.magics.cache import cache_info
from dspex_lab.magics.history import history_table
from dspex_lab.magics.lm import lm_info
from dspex_lab.magics.pool import pool_table
from dspex_lab.magics.run_cell import DspexRequest, run_dspex
from dspex_lab.magics.telemetry import open_telemetry

__all__ = ["MAGIC_NAMES", "DspexMagics", "last_error"]

MAGIC_NAMES = {"line": ("dspex", "dspex_lm", "dspex_pool", "dspex_history", "dspex_telemetry",
                        "dspex_cache"),
               "cell": ("dspex",)}
_MAX_MESSAGE = 1200
_CALL_FAILURES = (TaskError, LMError, RunError, BudgetExceeded, PoolError)
_LAST_ERROR: list[BaseException] = []


def last_error() -> BaseException | None:
    """The full exception behind the last magic error message (with the worker traceback as
    ``__cause__``), for when the one-paragraph message is not enough."""
    return _LAST_ERROR[0] if _LAST_ERROR else None


def _message(exc: BaseException) -> str:
    """One short paragraph: the first paragraph of the error, with what failed in front."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, SignatureError):
        return f"The signature does not parse: {text}"
    if isinstance(exc, _CALL_FAILURES):
        first = text.split("\n\n", 1)[0].strip()
        if len(first) > _MAX_MESSAGE:
            first = first[:_MAX_MESSAGE].rstrip() + " …"
        return (f"The call failed ({type(exc).__name__}): {first}\n"
                "Details: dspex_lab.magics.last_error()")
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE].rstrip() + " …"


def _usage_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The magic boundary: dspex_lab errors become a short ``UsageError`` (no traceback), and
    Ctrl-C one ``Interrupted`` line (the cell still stops, and so does Run All)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except (UsageError, Interrupted):
            raise
        except KeyboardInterrupt:
            raise Interrupted(f"Interrupted after {time.perf_counter() - start:.1f} s; "
                              "no answer arrived.") from None
        except (DspexError, TraitError) as exc:
            _LAST_ERROR[:] = [exc]
            raise UsageError(_message(exc)) from None
    return wrapper


_NO_OPTIONS: list[argparse.Namespace] = []


def _parse_options(argv: list[str]) -> argparse.Namespace:
    """The ``%%dspex`` options; the all-defaults answer is computed once (argparse costs about
    a third of a millisecond, a lot next to a cached call)."""
    if argv:
        return DspexMagics.dspex.parser.parse_args(argv)
    if not _NO_OPTIONS:
        _NO_OPTIONS.append(DspexMagics.dspex.parser.parse_args([]))
    return argparse.Namespace(**vars(_NO_OPTIONS[0]))


@magics_class
class DspexMagics(Magics):
    """``%%dspex`` and its line-magic helpers."""

    @magic_arguments()
    @argument("signature", nargs="*", metavar="SIGNATURE",
              help="The DSPy signature, e.g. `question -> answer: int` (not needed with "
                   "--with). Prefix `VAR <<` to assign the result to VAR without showing it.")
    @argument("--module", "-m", choices=MODULES, default=None,
              help="The DSPy module: predict, cot (ChainOfThought) or react (default: "
                   "Dspex.module).")
    @argument("--lm", default=None, metavar="NAME",
              help="The LM: a model string, a short alias, a Dspex.aliases name or a "
                   "configured name (default: Dspex.lm, else dspex_lab's default).")
    @argument("--out", "-o", default=None, metavar="VAR",
              help="Also store the result in the notebook variable VAR (it is always in "
                   "`_dspex`).")
    @argument("--df", default=None, metavar="VAR",
              help="Run over every row of the DataFrame VAR (input fields read the columns "
                   "of the same name; a cell body may map `field: column`).")
    @argument("--concurrency", type=int, default=None, metavar="N",
              help="LM calls in flight for --df runs (default: Dspex.concurrency).")
    @argument("--no-cache", dest="cache", action="store_const", const=False, default=None,
              help="Do not answer from the result cache.")
    @argument("--save", default=None, metavar="NAME",
              help="Keep this program (and its options) as NAME for --with NAME.")
    @argument("--with", dest="with_", default=None, metavar="NAME",
              help="Reuse the program saved as NAME (or a notebook variable holding a "
                   "Program, Pipeline, dspy.Module or signature).")
    @argument("--adapter", choices=tuple(ADAPTERS), default=None,
              help="The DSPy adapter (default: Dspex.adapter, else DSPy's ChatAdapter).")
    @argument("--tools", default=None, metavar="F,G",
              help="For --module react: comma-separated names of notebook functions.")
    @line_cell_magic
    @_usage_errors
    def dspex(self, line: str, cell: str | None = None) -> Any:
        """Call a DSPy signature on the inputs in the cell; show and keep the prediction.

        The cell body gives the inputs: one value for a one-input signature, else
        `field: value` lines (YAML values: lists, numbers, `|` blocks). `{name}` inserts a
        notebook variable (`{name.attr}`, `{name[0]}` too; nothing is evaluated; `{{ }}` are
        literal braces). The result is displayed and stored in `_dspex` (and --out VAR).

            %%dspex context, question -> answer --module cot --out ans
            context: {doc}
            question: Who wrote it?

            %dspex question -> answer --df questions --out answers    # a DataFrame run
            res << %dspex --with qa --df questions                      # assign, no display

        Defaults: %config Dspex.lm / .module / .adapter / .concurrency / .cache / .aliases.
        Errors (bad signature, missing input, unknown option, failed LM call) are shown as
        one short message.
        """
        magic = "%%dspex" if cell is not None else "%dspex"
        parts = split_line(line, DspexMagics.dspex.parser, magic)
        args = _parse_options(parts.argv)
        request = DspexRequest(
            signature=parts.signature, body=cell, module=args.module, lm=args.lm,
            adapter=args.adapter, out=args.out, target=parts.target, df=args.df,
            concurrency=args.concurrency, cache=args.cache, save=args.save, with_=args.with_,
            tools=tuple(t.strip() for t in (args.tools or "").split(",") if t.strip()))
        return run_dspex(request, self.shell.user_ns)

    @magic_arguments()
    @argument("model", nargs="?", default=None,
              help="The model to use from now on (sets Dspex.lm); omit to show the current.")
    @argument("--latency", type=float, default=None, help="Embedded LM: ms per reply.")
    @argument("--jitter", type=float, default=None, help="Embedded LM: random extra ms.")
    @argument("--error-rate", type=float, default=None,
              help="Embedded LM: share of requests that fail (0..1).")
    @argument("--error-kinds", default=None,
              help="Embedded LM: comma-separated kinds, e.g. 429,500,timeout.")
    @argument("--seed", type=int, default=None, help="Embedded LM: seed of the faults.")
    @line_magic
    @_usage_errors
    def dspex_lm(self, line: str) -> Any:
        """Show the LM the magics use, or set it; the --flags set the embedded LM's knobs."""
        args = parse_argstring(DspexMagics.dspex_lm, line)
        knobs = {"latency_ms": args.latency, "jitter_ms": args.jitter,
                 "error_rate": args.error_rate, "seed": args.seed,
                 "error_kinds": [k.strip() for k in args.error_kinds.split(",") if k.strip()]
                 if args.error_kinds is not None else None}
        return lm_info(args.model, embedded={k: v for k, v in knobs.items() if v is not None})

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Only this pool.")
    @line_magic
    @_usage_errors
    def dspex_pool(self, line: str) -> Any:
        """Show the worker pools: size, alive and busy workers, queue, tasks, restarts."""
        args = parse_argstring(DspexMagics.dspex_pool, line)
        return pool_table(args.name)

    @magic_arguments()
    @argument("n", nargs="?", type=int, default=5, help="How many calls (default 5).")
    @argument("--clear", action="store_true", help="Forget the history after showing it.")
    @line_magic
    @_usage_errors
    def dspex_history(self, line: str) -> Any:
        """Show the last N calls made with %%dspex: inputs, outputs, prompt and response."""
        args = parse_argstring(DspexMagics.dspex_history, line)
        return history_table(args.n, clear=args.clear)

    @magic_arguments()
    @argument("--clear", action="store_true",
              help="Forget every cached answer (on disk too) before showing the cache.")
    @line_magic
    @_usage_errors
    def dspex_cache(self, line: str) -> Any:
        """Show the result cache: location, entries, size, hit rate in this kernel."""
        args = parse_argstring(DspexMagics.dspex_cache, line)
        return cache_info(clear=args.clear)

    @magic_arguments()
    @argument("--summary", action="store_true",
              help="Show the summary table instead of the live dashboard.")
    @argument("--kind", default=None, help="Only events of this kind (e.g. lm.call).")
    @line_magic
    @_usage_errors
    def dspex_telemetry(self, line: str) -> Any:
        """Open the live telemetry dashboard (or a summary table of the events)."""
        args = parse_argstring(DspexMagics.dspex_telemetry, line)
        return open_telemetry(summary=args.summary, kind=args.kind)
