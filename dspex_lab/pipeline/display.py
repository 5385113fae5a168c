"""How pipelines and runs look in a notebook: pure HTML with inline SVG arrows (no graphviz,
no JavaScript, inline styles only so sanitized outputs keep their colours), Markdown and text.

The graph draws steps as boxes top to bottom, the fields each step reads on the arrow into
it, native steps green (in the kernel), DSPy steps blue (a worker), and groups for
``parallel`` (side by side), ``when`` (then / otherwise) and ``map`` (over a list field).
The trace is a table: step, kind, route, status, latency, tokens, cost, outputs (truncated).

    >>> html = pipeline_html(qa)          # what qa._repr_html_() returns
    >>> print(trace_text(qa(question="What is 2 + 3?")))
"""

from __future__ import annotations

import html
import reprlib
from typing import TYPE_CHECKING, Any

from dspex_lab.pipeline.steps import DSPyStep, Map, NativeStep, Parallel, Sequence, Step, When

if TYPE_CHECKING:
    from dspex_lab.pipeline.core import Pipeline
    from dspex_lab.pipeline.result import PipelineResult, StepResult

__all__ = ["pipeline_html", "pipeline_markdown", "pipeline_text", "trace_html",
           "trace_markdown", "trace_text"]

COLOURS = {  # (background, border)
    "native": ("#e8f5e9", "#43a047"),
    "dspy": ("#e3f2fd", "#1e88e5"),
    "parallel": ("#fafafa", "#9e9e9e"),
    "when": ("#fff8e1", "#fb8c00"),
    "map": ("#f3e5f5", "#8e24aa"),
    "sequence": ("#ffffff", "#bdbdbd"),
}
ROUTE_COLOURS = {"native": "#43a047", "pool": "#1e88e5", "distributed": "#5e35b1",
                 "inline": "#00897b", "mixed": "#757575", "": "#9e9e9e"}
STATUS_MARKS = {"ok": ("✓", "#2e7d32"), "error": ("✗", "#c62828"), "skipped": ("–", "#ef6c00")}
_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist = 60, 60, 4
_FONT = "font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',sans-serif;font-size:12px"
_e = html.escape


# -- the graph ---------------------------------------------------------------------------------

def pipeline_html(pipeline: Pipeline) -> str:
    """The pipeline as an HTML graph (a ``div``; boxes, groups and labelled arrows)."""
    inputs, outputs = pipeline.inputs, pipeline.outputs
    parts = [_io_box("inputs", inputs)]
    parts += _column(pipeline.steps)
    parts += [_arrow(outputs), _io_box("outputs", outputs)]
    legend = " ".join(
        f'<span style="display:inline-block;padding:0 6px;margin-right:4px;border-radius:3px;'
        f'background:{COLOURS[k][0]};border:1px solid {COLOURS[k][1]}">{label}</span>'
        for k, label in (("native", "native (kernel)"), ("dspy", "DSPy (worker)"),
                         ("parallel", "parallel"), ("when", "when"), ("map", "map")))
    head = (f'<div style="margin-bottom:6px"><b>Pipeline {_e(pipeline.name)}</b> '
            f'<code>{_e(_sig_text(pipeline))}</code></div>')
    body = "".join(parts)
    return (f'<div class="dspex-pipeline" style="{_FONT};display:inline-block;padding:8px">'
            f'{head}<div style="display:flex;flex-direction:column;align-items:center">{body}'
            f'</div><div style="margin-top:8px;color:#555">{legend}</div></div>')


def _sig_text(pipeline: Pipeline) -> str:
    try:
        return str(pipeline.signature)
    except Exception:
        return f"{', '.join(pipeline.inputs)} -> {', '.join(pipeline.outputs)}"


def _column(steps: tuple[Step, ...]) -> list[str]:
    parts: list[str] = []
    for s in steps:
        parts.append(_arrow(s.reads if not isinstance(s, Sequence | Parallel) else ()))
        parts.append(_node(s))
    return parts


def _node(step: Step) -> str:
    if isinstance(step, NativeStep | DSPyStep):
        return _box(step)
    bg, border = COLOURS.get(step.kind, COLOURS["sequence"])
    if isinstance(step, Parallel):
        extra = f" · timeout {step.timeout:g} s" if step.timeout else ""
        label = f"parallel · {step.name}{extra}"
        inner = _side_by_side([("" if isinstance(b, NativeStep | DSPyStep) else b.name,
                                 [_node(b)]) for b in step.branches])
    elif isinstance(step, When):
        cond = step.condition if isinstance(step.condition, str) else \
            getattr(step.condition, "__name__", "condition") + "(state)"
        label = f"when {cond} · {step.name}"
        sides = [("then", [_node(step.then)])]
        sides.append(("otherwise", [_node(step.otherwise)] if step.otherwise is not None
                      else ['<div style="color:#999;padding:6px">(nothing)</div>']))
        inner = _side_by_side(sides)
    elif isinstance(step, Map):
        label = f"map over {step.field} as {step.as_} · {step.name}"
        inner = _flow([_node(step.step)])
    else:
        label = f"steps · {step.name}"
        inner = _flow(_column(step.children)[1:])
    return (f'<div class="dspex-group dspex-{step.kind}" style="border:1.5px dashed {border};'
            f'background:{bg};border-radius:6px;padding:4px 8px 8px;margin:2px">'
            f'<div style="color:{border};font-weight:600;margin-bottom:4px">{_e(label)}</div>'
            f'{inner}</div>')


def _flow(parts: list[str]) -> str:
    return ('<div style="display:flex;flex-direction:column;align-items:center">'
            f'{"".join(parts)}</div>')


def _side_by_side(columns: list[tuple[str, list[str]]]) -> str:
    cells = "".join(
        '<div style="display:flex;flex-direction:column;align-items:center;margin:0 4px">'
        + (f'<div style="color:#777;font-size:11px">{_e(title)}</div>' if title else "")
        + f'{"".join(body)}</div>' for title, body in columns)
    return f'<div style="display:flex;flex-direction:row;align-items:flex-start">{cells}</div>'


def _box(step: NativeStep | DSPyStep) -> str:
    bg, border = COLOURS[step.kind]
    if isinstance(step, DSPyStep):
        what = "DSPy " + (type(step.custom).__name__ if step.custom is not None else step.module)
        where = "worker"
        if step.demo_count:
            what += f" · {step.demo_count} demo{'s' if step.demo_count != 1 else ''}"
    else:
        what = "template" if step.is_template else getattr(step.fn, "__name__", "function")
        where = "kernel"
    writes = ", ".join(step.writes) or "(no outputs)"
    return (f'<div class="dspex-step dspex-{step.kind}" data-step="{_e(step.name)}" '
            f'style="background:{bg};border:1.5px solid {border};border-radius:6px;'
            f'padding:4px 10px;margin:2px;min-width:120px;text-align:center">'
            f'<div style="font-weight:600">{_e(step.name)}</div>'
            f'<div style="color:#555;font-size:11px">{_e(what)} · {where}</div>'
            f'<div style="font-size:11px">→ <code>{_e(writes)}</code></div></div>')


def _arrow(fields: tuple[str, ...]) -> str:
    label = (f'<span style="color:#555;font-size:11px;margin-left:4px"><code>'
             f'{_e(", ".join(fields))}</code></span>') if fields else ""
    svg = ('<svg width="12" height="20" viewBox="0 0 12 20" style="display:block">'
           '<line x1="6" y1="0" x2="6" y2="13" stroke="#777" stroke-width="1.5"/>'
           '<polygon points="1,12 11,12 6,19" fill="#777"/></svg>')
    return f'<div style="display:flex;align-items:center;margin:1px 0">{svg}{label}</div>'


def _io_box(title: str, fields: tuple[str, ...]) -> str:
    return (f'<div style="border:1px solid #999;border-radius:12px;padding:2px 10px;'
            f'background:#fff">{title}: <code>{_e(", ".join(fields) or "(none)")}</code></div>')


# -- text and markdown ---------------------------------------------------------------------------

def _describe(step: Step) -> str:
    if isinstance(step, DSPyStep):
        mod = type(step.custom).__name__ if step.custom is not None else step.module
        demos = f", {step.demo_count} demos" if step.demo_count else ""
        return f"dspy/{mod}{demos}: {', '.join(step.reads)} -> {', '.join(step.writes)}"
    if isinstance(step, NativeStep):
        fn = "template" if step.is_template else getattr(step.fn, "__name__", "fn")
        return f"native/{fn}: {', '.join(step.reads)} -> {', '.join(step.writes) or '()'}"
    if isinstance(step, Parallel):
        return "parallel" + (f" (timeout {step.timeout:g} s)" if step.timeout else "")
    if isinstance(step, When):
        cond = step.condition if isinstance(step.condition, str) else \
            getattr(step.condition, "__name__", "condition") + "(state)"
        return f"when {cond}"
    if isinstance(step, Map):
        return f"map over {step.field} as {step.as_}"
    return "steps"


def _lines(steps: tuple[Step, ...], depth: int, bullet: str) -> list[str]:
    out = []
    for s in steps:
        out.append(f"{'  ' * depth}{bullet}{s.name}  {_describe(s)}")
        out += _lines(s.children, depth + 1, bullet)
    return out


def pipeline_text(pipeline: Pipeline) -> str:
    """A plain-text outline of the pipeline."""
    head = f"Pipeline {pipeline.name!r}: {_sig_text(pipeline)}"
    return "\n".join([head, *_lines(pipeline.steps, 1, "- ")])


def pipeline_markdown(pipeline: Pipeline) -> str:
    """The outline as a Markdown list."""
    lines = [f"**Pipeline `{pipeline.name}`**: `{_sig_text(pipeline)}`", ""]
    for line in _lines(pipeline.steps, 0, "- "):
        indent = len(line) - len(line.lstrip())
        name, _, desc = line.strip()[2:].partition("  ")
        lines.append(f"{' ' * indent}- **{name}** `{desc}`")
    return "\n".join(lines)


# -- the trace -----------------------------------------------------------------------------------

def _outputs_text(outputs: dict[str, Any], limit: int = 160) -> str:
    text = ", ".join(f"{k}={_SHOW.repr(v)}" for k, v in outputs.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary(result: PipelineResult) -> str:
    errors = len(result.errors)
    return (f"{result.name}: {len(result.trace)} steps, {result.latency_ms:.1f} ms, "
            f"{result.tokens} tokens, ${result.cost:.6f}"
            + (f", {errors} error{'s' if errors != 1 else ''}" if errors else ""))


def trace_text(result: PipelineResult) -> str:
    """The run as text: a summary line, then one line per step."""
    lines = [f"PipelineResult({_summary(result)})"]
    for r in result.trace:
        mark = STATUS_MARKS.get(r.status, ("?", ""))[0]
        err = f"  !! {r.error}" if r.error else ""
        lines.append(f"  {'  ' * r.depth}{mark} {r.name} [{r.kind}/{r.route or '-'}] "
                     f"{r.latency_ms:.1f} ms {r.tokens} tok  {_outputs_text(r.outputs, 100)}{err}")
    outs = _outputs_text(result.outputs, 200)
    return "\n".join([*lines, f"  outputs: {outs}"])


def trace_markdown(result: PipelineResult) -> str:
    """The run as a Markdown table."""
    rows = ["| step | kind | route | status | ms | tokens | cost | outputs |",
            "|---|---|---|---|---:|---:|---:|---|"]
    for r in result.trace:
        out = r.error or _outputs_text(r.outputs, 80)
        name = "&nbsp;&nbsp;" * r.depth + r.name
        rows.append(f"| {name} | {r.kind} | {r.route} | {r.status} | {r.latency_ms:.1f} | "
                    f"{r.tokens} | {r.cost:.6f} | {out.replace('|', '/')} |")
    return f"**{_summary(result)}**\n\n" + "\n".join(rows)


def trace_html(result: PipelineResult) -> str:
    """The run as an HTML table (the ``_repr_html_`` of a ``PipelineResult``)."""
    cell = "padding:2px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top"
    head = "".join(f'<th style="{cell}">{h}</th>' for h in
                   ("step", "kind", "route", "status", "ms", "tokens", "cost", "outputs"))
    rows = "".join(_trace_row(r, cell) for r in result.trace)
    return (f'<div class="dspex-trace" style="{_FONT}"><div><b>{_e(_summary(result))}</b></div>'
            f'<table style="border-collapse:collapse;font-size:12px"><thead><tr>{head}</tr></thead>'
            f'<tbody>{rows}</tbody></table></div>')


def _trace_row(r: StepResult, cell: str) -> str:
    mark, colour = STATUS_MARKS.get(r.status, ("?", "#000"))
    route_colour = ROUTE_COLOURS.get(r.route, "#616161")
    route = (f'<span style="color:#fff;background:{route_colour};border-radius:3px;'
             f'padding:0 4px">{_e(r.route or "-")}</span>')
    detail = f' <span style="color:#777">({_e(r.detail)})</span>' if r.detail else ""
    name = f'<span style="padding-left:{14 * r.depth}px">{_e(r.name)}</span>{detail}'
    out = (f'<span style="color:#c62828">{_e(r.error)}</span>' if r.error
           else f"<code>{_e(_outputs_text(r.outputs))}</code>")
    cached = " (cached)" if r.cached else ""
    vals = [name, _e(r.kind), route + cached,
            f'<span style="color:{colour}">{mark} {_e(r.status)}</span>',
            f"{r.latency_ms:.1f}", str(r.tokens), f"{r.cost:.6f}", out]
    return "<tr>" + "".join(f'<td style="{cell}">{v}</td>' for v in vals) + "</tr>"
