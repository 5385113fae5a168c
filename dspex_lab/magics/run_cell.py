"""What ``%%dspex`` / ``%dspex`` does once its line is parsed: ``run_dspex(request, ns)``.

One call per cell (the body holds the inputs, see ``body``), or a DataFrame run with
``--df`` (``dspex_lab.batch.run``). The result goes to ``_dspex``, to ``--out VAR`` and to
``VAR <<``; it is returned for display except after ``VAR <<`` (an assignment shows nothing).
A run shows its summary (``RunSummary``) and its warnings as notes (no file paths); an
interrupted run keeps its partial frame in those variables, then stops the cell with one
``Interrupted`` line that says how many rows are left.
Settings come from the options, then the ``--with`` program's saved options, then ``Dspex``.

    >>> req = DspexRequest(signature="question -> answer", body="What is 2 + 3?", out="ans")
    >>> run_dspex(req, ns).answer, ns["ans"].answer, ns["_dspex"].answer
    ('5', '5', '5')
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from dspex_lab import history
from dspex_lab.config import Dspex, get_config
from dspex_lab.errors import ConfigurationError, Interrupted
from dspex_lab.kinds import OPERATIONS
from dspex_lab.magics import saved as saved_programs
from dspex_lab.magics.body import parse_body, parse_columns

__all__ = ["OPERATIONS", "DspexRequest", "run_dspex"]


@dataclass(frozen=True)
class DspexRequest:
    """One ``%%dspex`` invocation; None means "not given" (a default applies)."""

    signature: str = ""
    body: str | None = None            # None: the line form
    module: str | None = None
    lm: str | None = None
    adapter: str | None = None
    out: str | None = None
    target: str | None = None          # the VAR of `VAR << %dspex ...`
    df: str | None = None
    concurrency: int | None = None
    cache: bool | None = None
    save: str | None = None
    with_: str | None = None
    tools: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Settings:
    program: Any
    lm: Any
    adapter: str | None
    cache: bool
    concurrency: int | None


def run_dspex(request: DspexRequest, namespace: MutableMapping[str, Any],
              config: Dspex | None = None,
              show: Callable[[Any], None] | None = None) -> Any:
    """Run ``request`` with ``namespace`` (the notebook's variables); ``show`` displays side
    output (a run's summary; default: IPython's ``display``). Returns the prediction or the
    result DataFrame (None after ``VAR <<``, or a note when the line only saved a program)."""
    cfg = config or get_config()
    _check_names(request)
    settings = _settings(request, namespace, cfg)
    if request.save:
        saved = saved_programs.save(request.save, settings.program, lm=request.lm,
                                    adapter=request.adapter, cache=request.cache,
                                    concurrency=request.concurrency)
        if request.body is None and request.df is None:
            from dspex_lab.display import Note

            return Note(f"Saved program {saved.name!r}: {saved.describe()}. Reuse it with "
                        f"%%dspex --with {saved.name}.")
    if request.df is not None:
        result = _run_frame(request, settings, namespace, cfg, show)
    elif request.body is None:
        raise ConfigurationError(
            "%dspex (one %) runs a signature over a DataFrame: add --df VARIABLE, or save "
            "the program with --save NAME. For one call, use the cell form: %%dspex SIGNATURE "
            "on the first line and the inputs in the cell.")
    else:
        result = _call(request.body, settings, namespace)
    shown = _store(result, request, namespace)
    _stop_if_interrupted(result, request)
    return shown


def _settings(request: DspexRequest, namespace: MutableMapping[str, Any], cfg: Dspex
              ) -> _Settings:
    from dspex_lab.programs import as_program

    module = request.module or cfg.module
    if request.with_:
        if request.signature:
            raise ConfigurationError(
                f"Give either a signature or --with {request.with_}, not both (the saved "
                f"program already has a signature); got signature {request.signature!r}.")
        saved = saved_programs.lookup(request.with_, namespace, module=module)
        program = as_program(saved.program)  # keyed as it is now
        if request.module and program.kind != "module" and request.module != program.kind:
            program = as_program(program.signature, module=request.module,
                                 tools=_tools(request.tools, namespace) or program.tools)
    else:
        if not request.signature.strip():
            raise ConfigurationError(
                "%%dspex needs a signature such as `question -> answer` on its first line, "
                "or --with NAME to reuse a program saved with --save NAME.")
        saved = saved_programs.SavedProgram("", None)
        program = as_program(request.signature, module=module,
                             tools=_tools(request.tools, namespace))
    lm_name = request.lm if request.lm is not None else saved.lm
    return _Settings(
        program=program,
        lm=cfg.resolve_lm(lm_name),
        adapter=_first(request.adapter, saved.adapter, cfg.adapter),
        cache=bool(_first(request.cache, saved.cache, cfg.cache)),
        concurrency=_first(request.concurrency, saved.concurrency, cfg.concurrency))


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _tools(names: tuple[str, ...], namespace: MutableMapping[str, Any]) -> list[Any]:
    tools = []
    for name in names:
        tool = namespace.get(name)
        if not callable(tool):
            what = "is not defined" if name not in namespace else \
                f"is a {type(tool).__name__}, not a function"
            raise ConfigurationError(f"--tools {name}: {name} {what}; define a function "
                                     f"`def {name}(...)` first.")
        tools.append(tool)
    return tools


def _call(body: str, settings: _Settings, namespace: MutableMapping[str, Any]) -> Any:
    from dspex_lab.calls import call_program

    program = settings.program
    inputs = parse_body(body, program.signature, namespace, program.input_names)
    try:
        prediction = call_program(OPERATIONS[program.kind], program, inputs, lm=settings.lm,
                                  adapter=settings.adapter, cache=settings.cache)
    except KeyboardInterrupt:
        history.record(program, inputs, error="Interrupted: no answer arrived.",
                       adapter=settings.adapter)
        raise
    except Exception as exc:
        history.record(program, inputs, error=f"{type(exc).__name__}: {exc}",
                       adapter=settings.adapter)
        raise
    history.record(program, inputs, prediction, adapter=settings.adapter)
    return prediction


def _run_frame(request: DspexRequest, settings: _Settings,
               namespace: MutableMapping[str, Any], cfg: Dspex,
               show: Callable[[Any], None] | None) -> Any:
    from dspex_lab.batch import run
    from dspex_lab.display import RunSummary

    name = request.df or ""
    if name not in namespace:
        raise ConfigurationError(f"--df {name}: the notebook has no variable {name!r}; load "
                                 "your data first, e.g. df = pd.read_csv(...).")
    program = settings.program
    columns = parse_columns(request.body or "", program.signature)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = run(program, namespace[name], columns=columns, lm=settings.lm,
                        adapter=settings.adapter, cache=settings.cache,
                        concurrency=settings.concurrency, progress=cfg.progress)
    except Exception as exc:
        history.record_run(program, error=f"{type(exc).__name__}: {exc}",
                           adapter=settings.adapter)
        raise
    history.record_run(program, frame, adapter=settings.adapter)
    _show_warnings(caught, frame, show or _display)
    (show or _display)(RunSummary(frame))
    return frame


def _show_warnings(caught: list[warnings.WarningMessage], frame: Any,
                   show: Callable[[Any], None]) -> None:
    """The run's warnings (budget reached, circuit open, a failing callback...) as notes;
    an interrupt's is left out: the summary says it."""
    from dspex_lab.display import Note

    interrupted = frame.attrs.get("usage", {}).get("status") == "interrupted"
    for w in caught:
        text = str(w.message)
        if interrupted and text.startswith("The run was interrupted"):
            continue
        show(Note(text, kind="warning"))


def _stop_if_interrupted(result: Any, request: DspexRequest) -> None:
    """After an interrupted run has been stored: stop the cell (and Run All) with one line."""
    usage = getattr(result, "attrs", {}).get("usage") if request.df is not None else None
    if not usage or usage.get("status") != "interrupted":
        return
    rows, left = int(usage.get("rows") or 0), int(usage.get("not_run") or 0)
    where = ", ".join(n for n in (request.out, request.target, "_dspex") if n)
    raise Interrupted(f"Interrupted after {float(usage.get('wall_s') or 0):.1f} s: "
                      f"{rows - left:,} of {rows:,} rows finished and are in {where}; "
                      f"rerun the cell to finish the {left:,} rows left.")


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _check_names(request: DspexRequest) -> None:
    for option, name in (("--out", request.out), ("--save", request.save)):
        if name is not None and not name.isidentifier():
            raise ConfigurationError(f"{option} {name!r} is not a valid name; use letters, "
                                     f"digits and underscores, e.g. {option} answer.")


def _store(result: Any, request: DspexRequest, namespace: MutableMapping[str, Any]) -> Any:
    namespace["_dspex"] = result
    for name in (request.out, request.target):
        if name:
            namespace[name] = result
    return None if request.target else result
